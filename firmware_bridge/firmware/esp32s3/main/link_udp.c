/*
 * Link over Wi-Fi: the ESP32-S3 joins a network as a station and exchanges UDP datagrams with
 * the host through lwIP sockets, as PROTOCOL.md section 6 specifies (link.h).
 *
 *   - Each datagram carries whole frames (imucap_packer_t), at most 1472 bytes unless one frame
 *     alone is larger.
 *   - While no host talks to the device, it announces itself: DEVICE_INFO once a second to the
 *     configured address (CONFIG_IMUCAP_UDP_HOST, default 255.255.255.255, port
 *     CONFIG_IMUCAP_UDP_PORT, default 9000).
 *   - Everything goes to the source address of the latest datagram that held a command, so a
 *     host restarted elsewhere takes over by sending GET_INFO.
 *   - 5 s without a command: the host is gone (streaming stops) and announcements resume.
 *   - The station reconnects by itself, one attempt a second, for as long as it takes.
 *
 * The device listens on the same port number (CONFIG_IMUCAP_UDP_PORT) on all its addresses.
 *
 * Threads: udp_task receives, keeps the host's address and the timers, and calls the
 * callbacks; the app task sends (link_write_frame, link_flush) and owns the packer. The host
 * address is guarded by a mutex that udp_task holds while a datagram goes through the rx
 * callback, so a reply is always sent to the address of the command it answers.
 */
#include "sdkconfig.h"

#if CONFIG_IMUCAP_LINK_UDP

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_timer.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "lwip/inet.h"
#include "lwip/sockets.h"
#include "nvs_flash.h"

#include "imucap_proto.h"
#include "link.h"

#define WIFI_CONNECTED_BIT BIT0
#define RECONNECT_DELAY_US (1000 * 1000)
#define RECEIVE_POLL_MS 100 /* recvfrom timeout: how often the timers are checked */
#define RX_DATAGRAM_MAX 1536

static const char *TAG = "imucap_udp";

static link_callbacks_t cb;
static EventGroupHandle_t wifi_events;
static esp_timer_handle_t reconnect_timer;
static int sock = -1;

static SemaphoreHandle_t host_lock;        /* guards host_addr and host_present */
static struct sockaddr_in configured_addr; /* announcements, and everything while no host */
static struct sockaddr_in host_addr;       /* source of the latest command */
static volatile bool host_present;

/* App task only. */
static uint8_t datagram_buf[IMUCAP_UDP_MAX_DATAGRAM];
static imucap_packer_t packer;

/* ===================================================================== Wi-Fi station */

static bool wifi_up(void)
{
    return (xEventGroupGetBits(wifi_events) & WIFI_CONNECTED_BIT) != 0;
}

static void reconnect(void *arg)
{
    (void)arg;
    esp_err_t err = esp_wifi_connect();
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "esp_wifi_connect: %s", esp_err_to_name(err));
        esp_timer_start_once(reconnect_timer, RECONNECT_DELAY_US);
    }
}

static void on_network_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    if (base == WIFI_EVENT && id == WIFI_EVENT_STA_START) {
        reconnect(NULL);
    } else if (base == WIFI_EVENT && id == WIFI_EVENT_STA_DISCONNECTED) {
        const wifi_event_sta_disconnected_t *d = data;
        xEventGroupClearBits(wifi_events, WIFI_CONNECTED_BIT);
        ESP_LOGW(TAG, "Wi-Fi \"%s\" not connected (reason %d); retrying in 1 s",
                 CONFIG_IMUCAP_WIFI_SSID, d != NULL ? (int)d->reason : -1);
        esp_timer_stop(reconnect_timer); /* not running: harmless error */
        esp_timer_start_once(reconnect_timer, RECONNECT_DELAY_US);
    } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
        const ip_event_got_ip_t *e = data;
        ESP_LOGI(TAG, "Wi-Fi connected, address " IPSTR ", UDP port %d", IP2STR(&e->ip_info.ip),
                 CONFIG_IMUCAP_UDP_PORT);
        xEventGroupSetBits(wifi_events, WIFI_CONNECTED_BIT);
    }
}

static esp_err_t wifi_start(void)
{
    esp_err_t err = nvs_flash_init(); /* Wi-Fi keeps its calibration data in NVS */
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    if (err != ESP_OK) {
        return err;
    }
    ESP_ERROR_CHECK(esp_netif_init());
    err = esp_event_loop_create_default();
    if (err != ESP_OK && err != ESP_ERR_INVALID_STATE) { /* INVALID_STATE: already there */
        return err;
    }
    if (esp_netif_create_default_wifi_sta() == NULL) {
        return ESP_FAIL;
    }
    wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    ESP_ERROR_CHECK(esp_wifi_init(&init));
    ESP_ERROR_CHECK(esp_event_handler_instance_register(WIFI_EVENT, ESP_EVENT_ANY_ID,
                                                        on_network_event, NULL, NULL));
    ESP_ERROR_CHECK(esp_event_handler_instance_register(IP_EVENT, IP_EVENT_STA_GOT_IP,
                                                        on_network_event, NULL, NULL));

    wifi_config_t wc;
    memset(&wc, 0, sizeof wc);
    size_t n = strlen(CONFIG_IMUCAP_WIFI_SSID);
    memcpy(wc.sta.ssid, CONFIG_IMUCAP_WIFI_SSID, n < sizeof wc.sta.ssid ? n : sizeof wc.sta.ssid);
    n = strlen(CONFIG_IMUCAP_WIFI_PASSWORD);
    memcpy(wc.sta.password, CONFIG_IMUCAP_WIFI_PASSWORD,
           n < sizeof wc.sta.password ? n : sizeof wc.sta.password);
    /* An empty password joins an open network; otherwise WPA2 or better. */
    wc.sta.threshold.authmode = n == 0 ? WIFI_AUTH_OPEN : WIFI_AUTH_WPA2_PSK;
    ESP_ERROR_CHECK(esp_wifi_set_storage(WIFI_STORAGE_RAM)); /* the settings come from Kconfig */
    ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
    ESP_ERROR_CHECK(esp_wifi_set_config(WIFI_IF_STA, &wc));
    ESP_ERROR_CHECK(esp_wifi_start());
    /* Modem sleep delays received datagrams up to a DTIM period; commands and PING times
     * matter more than the radio's current here. */
    ESP_ERROR_CHECK(esp_wifi_set_ps(WIFI_PS_NONE));
    return ESP_OK;
}

/* ===================================================================== sockets */

static bool send_datagram(void *ctx, const uint8_t *data, size_t len)
{
    struct sockaddr_in dest;
    (void)ctx;
    if (sock < 0 || !wifi_up()) {
        return false;
    }
    xSemaphoreTake(host_lock, portMAX_DELAY); /* waits while a command is being taken in */
    dest = host_present ? host_addr : configured_addr;
    xSemaphoreGive(host_lock);
    int n = sendto(sock, data, len, MSG_DONTWAIT, (const struct sockaddr *)&dest, sizeof dest);
    return n == (int)len; /* ENOMEM/EAGAIN: lwIP out of buffers, the datagram is lost */
}

static void udp_task(void *arg)
{
    static uint8_t buf[RX_DATAGRAM_MAX];
    static const uint8_t delimiter = 0;
    int64_t last_command_us = 0;
    int64_t last_announce_us = 0;
    bool announce_now = true;
    (void)arg;
    for (;;) {
        struct sockaddr_in src;
        socklen_t src_len = sizeof src;
        int n = recvfrom(sock, buf, sizeof buf, 0, (struct sockaddr *)&src, &src_len);
        int64_t now = esp_timer_get_time();
        if (n > 0 && src.sin_family == AF_INET) {
            bool new_host = false;
            xSemaphoreTake(host_lock, portMAX_DELAY);
            bool command = cb.rx(buf, (size_t)n, now);
            /* A datagram holds whole frames: a 0x00 ends a cut one (dropped as damaged). */
            command = cb.rx(&delimiter, 1, now) || command;
            if (command) { /* not just any datagram: it held an imucap command */
                new_host = !host_present || host_addr.sin_addr.s_addr != src.sin_addr.s_addr ||
                           host_addr.sin_port != src.sin_port;
                host_addr = src;
                host_present = true;
                last_command_us = now;
            }
            xSemaphoreGive(host_lock);
            if (new_host) {
                char text[16];
                inet_ntoa_r(src.sin_addr, text, sizeof text);
                ESP_LOGI(TAG, "host %s:%u", text, (unsigned)ntohs(src.sin_port));
                cb.event(LINK_EVENT_HOST_PRESENT);
            }
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            ESP_LOGW(TAG, "recvfrom: errno %d", errno);
            vTaskDelay(pdMS_TO_TICKS(RECEIVE_POLL_MS));
        }

        if (host_present && now - last_command_us > (int64_t)IMUCAP_UDP_HOST_TIMEOUT_MS * 1000) {
            xSemaphoreTake(host_lock, portMAX_DELAY);
            host_present = false;
            xSemaphoreGive(host_lock);
            ESP_LOGW(TAG, "no command for %u s: host gone, announcing again",
                     IMUCAP_UDP_HOST_TIMEOUT_MS / 1000u);
            cb.event(LINK_EVENT_HOST_GONE);
            announce_now = true;
        }
        if (!host_present && wifi_up() &&
            (announce_now || now - last_announce_us >= (int64_t)IMUCAP_UDP_ANNOUNCE_MS * 1000)) {
            announce_now = false;
            last_announce_us = now;
            cb.event(LINK_EVENT_ANNOUNCE);
        }
    }
}

static esp_err_t socket_open(void)
{
    struct sockaddr_in local;
    struct timeval timeout = {.tv_sec = 0, .tv_usec = RECEIVE_POLL_MS * 1000};
    int yes = 1;

    memset(&configured_addr, 0, sizeof configured_addr);
    configured_addr.sin_family = AF_INET;
    configured_addr.sin_port = htons(CONFIG_IMUCAP_UDP_PORT);
    if (inet_pton(AF_INET, CONFIG_IMUCAP_UDP_HOST, &configured_addr.sin_addr) != 1) {
        ESP_LOGE(TAG, "host address \"%s\" is not an IPv4 address: using 255.255.255.255",
                 CONFIG_IMUCAP_UDP_HOST);
        configured_addr.sin_addr.s_addr = htonl(INADDR_BROADCAST);
    }

    sock = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    if (sock < 0) {
        ESP_LOGE(TAG, "socket: errno %d", errno);
        return ESP_FAIL;
    }
    setsockopt(sock, SOL_SOCKET, SO_BROADCAST, &yes, sizeof yes); /* 255.255.255.255 */
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    memset(&local, 0, sizeof local);
    local.sin_family = AF_INET;
    local.sin_port = htons(CONFIG_IMUCAP_UDP_PORT);
    local.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(sock, (const struct sockaddr *)&local, sizeof local) != 0) {
        ESP_LOGE(TAG, "bind to port %d: errno %d", CONFIG_IMUCAP_UDP_PORT, errno);
        close(sock);
        sock = -1;
        return ESP_FAIL;
    }
    return ESP_OK;
}

/* ===================================================================== link.h */

esp_err_t link_init(const link_config_t *cfg)
{
    esp_err_t err;
    cb = cfg->cb;
    if (!imucap_packer_init(&packer, datagram_buf, sizeof datagram_buf, IMUCAP_UDP_MAX_DATAGRAM,
                            send_datagram, NULL)) {
        return ESP_ERR_INVALID_STATE;
    }
    wifi_events = xEventGroupCreate();
    host_lock = xSemaphoreCreateMutex();
    if (wifi_events == NULL || host_lock == NULL) {
        return ESP_ERR_NO_MEM;
    }
    const esp_timer_create_args_t timer_args = {
        .callback = reconnect,
        .dispatch_method = ESP_TIMER_TASK,
        .name = "imucap_wifi",
    };
    err = esp_timer_create(&timer_args, &reconnect_timer);
    if (err != ESP_OK) {
        return err;
    }
    if (CONFIG_IMUCAP_WIFI_SSID[0] == '\0') {
        ESP_LOGE(TAG, "no Wi-Fi network configured: idf.py menuconfig -> imucap link");
        return ESP_ERR_INVALID_ARG;
    }
    err = wifi_start();
    if (err != ESP_OK) {
        return err;
    }
    err = socket_open();
    if (err != ESP_OK) {
        return err;
    }
    if (xTaskCreatePinnedToCore(udp_task, "imucap_udp", 4096, NULL, 11, NULL, 1) != pdPASS) {
        return ESP_ERR_NO_MEM;
    }
    ESP_LOGI(TAG, "Wi-Fi UDP link: network \"%s\", announcing to %s:%d", CONFIG_IMUCAP_WIFI_SSID,
             CONFIG_IMUCAP_UDP_HOST, CONFIG_IMUCAP_UDP_PORT);
    return ESP_OK;
}

const char *link_name(void)
{
    return "Wi-Fi UDP";
}

bool link_write_frame(const uint8_t *frame, size_t len)
{
    uint32_t dropped = packer.datagrams_dropped;
    imucap_packer_write(&packer, frame, len);
    return packer.datagrams_dropped == dropped;
}

void link_flush(void)
{
    imucap_packer_flush(&packer);
}

bool link_host_present(void)
{
    return host_present;
}

size_t link_value_size(void)
{
    return 0;
}

#else
typedef int link_udp_not_selected_t; /* keeps the translation unit non-empty */
#endif /* CONFIG_IMUCAP_LINK_UDP */
