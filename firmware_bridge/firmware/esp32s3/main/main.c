/*
 * imucap reference firmware: ESP32-S3 + up to 16 ICM-42688-P on one SPI bus, streaming imucap
 * wire protocol v1 (firmware_bridge/PROTOCOL.md) to the host over a link chosen at build time
 * (idf.py menuconfig -> imucap link): the chip's USB Serial/JTAG port (a USB CDC-ACM serial
 * port on the host; the default), Bluetooth LE (PROTOCOL.md section 5) or Wi-Fi UDP (section 6).
 *
 * The protocol bytes (COBS, CRC, frames, command receiver, BLE notification chunker, UDP
 * datagram packer) come from the portable code in ../../protocol/, which imucap's test suite
 * compiles and checks against the Python host. The links live in link_usb.c, link_ble.c and
 * link_udp.c behind link.h. This file is the board part: pins, sensors, timer, and the
 * command/stream logic, the same for every link.
 *
 * Tasks
 *   link task  (the USB reader, the NimBLE host task or the UDP receiver) timestamps the host's
 *              bytes, pushes them through the protocol receiver (on_link_rx) and queues the
 *              host commands they complete; link events (host present or gone, announce, MTU)
 *              are posted as flags.
 *   app_task   owns everything else (sensors, batching, every frame written to the link, so
 *              frames never interleave); it wakes on the sample timer, on queued commands and
 *              on link events.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bootloader_random.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/task.h"

#include "icm42688.h"
#include "imucap_proto.h"
#include "link.h"

/* ===================================================================== board configuration
 * Edit this block for another wiring or placement; nothing else needs to change. */

#define FIRMWARE_NAME "imucap-ref 1.1.0 esp32s3"
#define CHIP_NAME "ICM-42688-P"
#define MANUFACTURER_NAME "imucap reference design" /* BLE Device Information only */

/* SPI2 (FSPI) on its IO-MUX pins. */
#define IMU_SPI_HOST SPI2_HOST
#define PIN_SCLK 12
#define PIN_MOSI 11 /* to every sensor's SDI */
#define PIN_MISO 13 /* from every sensor's SDO */
#define SPI_CLOCK_HZ (10 * 1000 * 1000) /* the chip allows 24 MHz; 10 MHz tolerates long wires */

/* One row per sensor, in sensor order (the order of SAMPLES records and of sensor_ok bits):
 * its placement site name (sent in DEVICE_INFO; the host matches sensors by name) and its
 * chip-select GPIO. 1 to 16 rows. Default: the IMUSIC-style 11-site preset of PROTOCOL.md. */
static const struct {
    const char *site;
    int cs_gpio;
} SENSORS[] = {
    {"frontalis_l", 1},
    {"frontalis_r", 2},
    {"orbicularis_oculi_l", 4},
    {"orbicularis_oculi_r", 5},
    {"zygomaticus_major_l", 6},
    {"zygomaticus_major_r", 7},
    {"zygomaticus_minor_l", 8},
    {"zygomaticus_minor_r", 9},
    {"buccinator_l", 10},
    {"buccinator_r", 14},
    {"mentalis", 15},
    /* More sensors, up to 16, e.g.:
     * {"head_ref", 16}, {"nasalis_l", 17}, {"nasalis_r", 18}, {"...", 21}, {"...", 39}, */
};

#define DEFAULT_RATE_HZ 100        /* 25, 50, 100, 200, 500 or 1000 */
#define DEFAULT_SAMPLES_PER_FRAME 0 /* 0: chosen from the rate, about 100 frames per second */
#define AUTOSTART_STREAMING 0       /* 1: stream from power-up without waiting for START */
/* Bluetooth LE at the default ATT_MTU of 23: batch this many times more samples per frame
 * when a one-sample frame does not fit in one notification (PROTOCOL.md section 5, Budget). */
#define SMALL_MTU_BATCHING 4

/* ===================================================================== derived limits */

#define SENSOR_COUNT (sizeof SENSORS / sizeof SENSORS[0])
#define VALUES_PER_SENSOR 6 /* accel x y z, gyro x y z */
#define MAX_SAMPLES_PER_FRAME 20
#define SAMPLES_CONTENT (IMUCAP_CONTENT_ACCEL | IMUCAP_CONTENT_GYRO)

_Static_assert(SENSOR_COUNT >= 1 && SENSOR_COUNT <= IMUCAP_MAX_SENSORS, "1 to 16 sensors");
_Static_assert(IMUCAP_MIN_BODY + IMUCAP_SAMPLES_HEADER +
                       2 * MAX_SAMPLES_PER_FRAME * IMUCAP_MAX_SENSORS * VALUES_PER_SENSOR <=
                   IMUCAP_MAX_BODY,
               "a full batch must fit in one frame");

/* A SAMPLES frame of one sample, the budget unit of PROTOCOL.md (160 bytes for 11 sensors). */
#define ONE_SAMPLE_FRAME_SIZE IMUCAP_SAMPLES_FRAME_SIZE(1, SENSOR_COUNT, VALUES_PER_SENSOR)

#define FRAME_BUF_SIZE \
    IMUCAP_SAMPLES_FRAME_SIZE(MAX_SAMPLES_PER_FRAME, IMUCAP_MAX_SENSORS, VALUES_PER_SENSOR)
_Static_assert(FRAME_BUF_SIZE >= IMUCAP_DEVICE_INFO_FRAME_MAX, "DEVICE_INFO must fit");

static const char *TAG = "imucap";

/* ===================================================================== state (app_task) */

static icm42688_t imu[SENSOR_COUNT];
static uint32_t device_id;
static uint32_t boot_id;
static uint16_t rate_hz = DEFAULT_RATE_HZ;
static uint8_t samples_per_frame;
static uint8_t samples_per_frame_asked = DEFAULT_SAMPLES_PER_FRAME; /* 0: the device chooses */
static bool streaming;
static uint16_t tx_seq; /* one counter for every frame this device writes */

static int16_t batch[MAX_SAMPLES_PER_FRAME * SENSOR_COUNT * VALUES_PER_SENSOR];
static uint8_t batch_n;      /* samples in the batch */
static int64_t batch_t0_us;  /* time of its first sample */
static uint16_t batch_ok;    /* sensor_ok bits of the batch */
static int64_t next_due_us;  /* time slot of the next sample */

static uint8_t frame[FRAME_BUF_SIZE];
static uint32_t frames_dropped;  /* frames the link had no room for while a host was there */
static uint32_t samples_missed;  /* sample slots skipped because the loop ran late */
static unsigned sensors_up_at_boot;

static esp_timer_handle_t sample_timer;
static TaskHandle_t app_task_handle;

/* Host commands, from the link task to app_task. */
typedef struct {
    imucap_rx_event_t event; /* IMUCAP_RX_COMMAND or IMUCAP_RX_VERSION */
    imucap_cmd_t cmd;
    int64_t rx_us; /* device clock when the bytes arrived */
} host_event_t;
static QueueHandle_t host_events;
/* LINK_EVENT_* flags posted by the link, taken by app_task. */
static uint32_t pending_link_events;

/* ===================================================================== output */

/* Sends the frame just encoded into `frame` (len 0: it did not fit, nothing sent). The link
 * never blocks: a frame it has no room for is dropped, its seq spent all the same, so the host
 * sees the gap. */
static void send_frame(size_t len)
{
    if (len == 0) {
        ESP_LOGE(TAG, "frame encoding failed");
        return;
    }
    tx_seq++;
    if (!link_write_frame(frame, len) && link_host_present()) {
        frames_dropped++; /* (frames written while no host is there are not losses) */
    }
}

static void send_device_info(void)
{
    imucap_device_info_t m;
    memset(&m, 0, sizeof m);
    m.proto_major = IMUCAP_PROTO_MAJOR;
    m.proto_minor = IMUCAP_PROTO_MINOR;
    m.device_id = device_id;
    m.boot_id = boot_id;
    m.rate_hz = rate_hz;
    m.samples_per_frame = samples_per_frame;
    m.sensor_count = SENSOR_COUNT;
    m.content = SAMPLES_CONTENT;
    m.accel_range_g = ICM42688_ACCEL_RANGE_G;
    m.gyro_range_dps = ICM42688_GYRO_RANGE_DPS;
    m.mag_range_ut = 0;
    m.streaming = streaming;
    m.chip = imucap_cstr(CHIP_NAME);
    m.firmware = imucap_cstr(FIRMWARE_NAME);
    for (size_t i = 0; i < SENSOR_COUNT; i++) {
        m.sites[i] = imucap_cstr(SENSORS[i].site);
    }
    send_frame(imucap_encode_device_info(frame, sizeof frame, tx_seq, &m));
}

static void send_ack(const imucap_cmd_t *cmd, uint8_t status)
{
    imucap_ack_t ack = {.command_seq = cmd->seq, .command_type = cmd->type, .status = status};
    send_frame(imucap_encode_ack(frame, sizeof frame, tx_seq, &ack));
}

static void send_log(uint8_t level, const char *fmt, ...)
{
    char text[160];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    ESP_LOGI(TAG, "LOG %u: %s", level, text);
    send_frame(imucap_encode_log(frame, sizeof frame, tx_seq, level, text, len));
}

/* Sends the batch collected so far (possibly fewer samples than samples_per_frame). */
static void flush_batch(void)
{
    if (batch_n == 0) {
        return;
    }
    /* PROTOCOL.md: a cleared sensor_ok bit's values are zero. */
    for (size_t i = 0; i < SENSOR_COUNT; i++) {
        if (!(batch_ok & (1u << i))) {
            for (size_t k = 0; k < batch_n; k++) {
                memset(&batch[(k * SENSOR_COUNT + i) * VALUES_PER_SENSOR], 0,
                       VALUES_PER_SENSOR * sizeof batch[0]);
            }
        }
    }
    imucap_samples_t m = {
        .t0_us = (uint64_t)batch_t0_us,
        .dt_us = 1000000u / rate_hz,
        .n_samples = batch_n,
        .sensor_count = SENSOR_COUNT,
        .content = SAMPLES_CONTENT,
        .sensor_ok = batch_ok,
        .values = batch,
        .records = NULL,
    };
    batch_n = 0;
    send_frame(imucap_encode_samples(frame, sizeof frame, tx_seq, &m));
}

/* ===================================================================== sensors */

/* Reads every sensor once into the batch, at the time slot `t_us`. */
static void take_sample(int64_t t_us)
{
    int64_t now = esp_timer_get_time();
    if (batch_n == 0) {
        batch_t0_us = t_us;
        batch_ok = (uint16_t)((1u << SENSOR_COUNT) - 1u);
    }
    int16_t *row = &batch[(size_t)batch_n * SENSOR_COUNT * VALUES_PER_SENSOR];
    for (size_t i = 0; i < SENSOR_COUNT; i++) {
        int16_t *values = row + i * VALUES_PER_SENSOR;
        if (!imu[i].ok || now < imu[i].ready_at_us || !icm42688_read(&imu[i], values)) {
            batch_ok &= (uint16_t)~(1u << i);
        }
    }
    if (++batch_n >= samples_per_frame) {
        flush_batch();
    }
}

/* Checks one sensor per call, round robin: a sensor that stops answering is marked down (its
 * sensor_ok bit clears); one that answers again is configured and comes back. */
static void check_next_sensor(void)
{
    static size_t next;
    size_t i = next;
    next = (next + 1) % SENSOR_COUNT;
    bool answers = icm42688_who_am_i_ok(&imu[i]);
    if (imu[i].ok && !answers) {
        imu[i].ok = false;
        send_log(IMUCAP_LOG_WARNING, "sensor %u (%s) stopped answering", (unsigned)i,
                 SENSORS[i].site);
    } else if (!imu[i].ok && answers && icm42688_configure(&imu[i], rate_hz)) {
        send_log(IMUCAP_LOG_INFO, "sensor %u (%s) answers again", (unsigned)i, SENSORS[i].site);
    }
}

static unsigned probe_sensors(bool only_missing)
{
    unsigned up = 0;
    for (size_t i = 0; i < SENSOR_COUNT; i++) {
        if (!(only_missing && imu[i].ok)) {
            icm42688_reset_and_configure(&imu[i], rate_hz);
        }
        up += imu[i].ok;
    }
    return up;
}

/* ===================================================================== streaming and rate */

static uint8_t choose_samples_per_frame(uint16_t hz, uint8_t requested)
{
    unsigned spf = requested != 0 ? requested : (hz + 99u) / 100u; /* ~100 frames/s */
    size_t value_size = link_value_size();
    if (requested == 0 && value_size != 0 && ONE_SAMPLE_FRAME_SIZE > value_size) {
        /* Bluetooth LE at a small ATT_MTU: a frame spans several notifications anyway, so
         * fewer, longer frames save the per-frame bytes (MTU 23: 4 samples at 100 Hz). */
        spf *= SMALL_MTU_BATCHING;
    }
    if (spf < 1) {
        spf = 1;
    }
    if (spf > MAX_SAMPLES_PER_FRAME) {
        spf = MAX_SAMPLES_PER_FRAME;
    }
    return (uint8_t)spf;
}

static void start_streaming(void)
{
    if (streaming) {
        return;
    }
    probe_sensors(true); /* retry sensors that were missing */
    batch_n = 0;
    streaming = true;
    uint64_t period = 1000000u / rate_hz;
    next_due_us = esp_timer_get_time() + (int64_t)period;
    ESP_ERROR_CHECK(esp_timer_start_periodic(sample_timer, period));
}

/* Stops the sample timer; `send_rest`: send the last, partial batch (after STOP), else drop it
 * (the host has gone). */
static void stop_streaming(bool send_rest)
{
    if (!streaming) {
        return;
    }
    esp_timer_stop(sample_timer);
    if (send_rest) {
        flush_batch();
    }
    batch_n = 0;
    streaming = false;
}

/* Applies a rate the chip supports; restarts the timer when streaming. */
static void apply_rate(uint16_t hz, uint8_t spf)
{
    bool was_streaming = streaming;
    stop_streaming(true);
    rate_hz = hz;
    samples_per_frame = spf;
    for (size_t i = 0; i < SENSOR_COUNT; i++) {
        if (imu[i].ok && !icm42688_set_rate(&imu[i], hz)) {
            imu[i].ok = false;
        }
    }
    if (was_streaming) {
        start_streaming();
    }
}

/* ===================================================================== host commands */

static void handle_command(const imucap_cmd_t *cmd, int64_t rx_us)
{
    switch (cmd->type) {
    case IMUCAP_MSG_GET_INFO:
        send_device_info();
        break;
    case IMUCAP_MSG_START:
        send_ack(cmd, IMUCAP_ACK_OK);
        start_streaming();
        break;
    case IMUCAP_MSG_STOP:
        stop_streaming(true); /* sends the last, partial batch first */
        send_ack(cmd, IMUCAP_ACK_OK);
        break;
    case IMUCAP_MSG_SET_RATE: {
        uint16_t asked = cmd->set_rate.rate_hz;
        if (asked < 1 || asked > 1000) {
            send_ack(cmd, IMUCAP_ACK_BAD_ARGUMENT);
            break;
        }
        /* Not every rate exists: take the nearest the chip has, then tell the host. */
        uint16_t hz = icm42688_nearest_rate(asked);
        samples_per_frame_asked = cmd->set_rate.samples_per_frame;
        apply_rate(hz, choose_samples_per_frame(hz, samples_per_frame_asked));
        send_ack(cmd, IMUCAP_ACK_OK);
        send_device_info();
        break;
    }
    case IMUCAP_MSG_PING: {
        imucap_pong_t pong = {
            .nonce = cmd->ping.nonce,
            .host_time_us = cmd->ping.host_time_us,
            .device_rx_us = (uint64_t)rx_us,
            .device_tx_us = (uint64_t)esp_timer_get_time(),
        };
        send_frame(imucap_encode_pong(frame, sizeof frame, tx_seq, &pong));
        break;
    }
    default:
        break;
    }
}

static void handle_host_event(const host_event_t *e)
{
    if (e->event == IMUCAP_RX_COMMAND) {
        handle_command(&e->cmd, e->rx_us);
    } else if (e->event == IMUCAP_RX_VERSION) {
        send_log(IMUCAP_LOG_ERROR,
                 "host speaks imucap protocol %u.%u, this firmware %u.%u: update the %s",
                 e->cmd.major, e->cmd.minor, IMUCAP_PROTO_MAJOR, IMUCAP_PROTO_MINOR,
                 e->cmd.major > IMUCAP_PROTO_MAJOR ? "firmware" : "host software");
    }
}

/* ===================================================================== link events */

/* What the link reports (link.h): the host came or went, time to announce, a new ATT_MTU. */
static void handle_link_events(uint32_t events)
{
    if (events & LINK_EVENT_HOST_GONE) {
        if (streaming) {
            ESP_LOGW(TAG, "%s: host gone, streaming stops", link_name());
            stop_streaming(false); /* as when a serial port closes (PROTOCOL.md section 4) */
        }
    }
    if ((events & LINK_EVENT_HOST_PRESENT) && link_host_present()) {
        unsigned up = 0;
        ESP_LOGI(TAG, "%s: host present", link_name());
        for (size_t i = 0; i < SENSOR_COUNT; i++) {
            up += imu[i].ok;
        }
        if (up < SENSOR_COUNT) { /* the boot-time warning went nowhere on BLE and UDP */
            send_log(IMUCAP_LOG_WARNING, "%u of %u sensors answer", up, (unsigned)SENSOR_COUNT);
        }
    }
    if (events & LINK_EVENT_MTU_CHANGED) {
        uint8_t spf = choose_samples_per_frame(rate_hz, samples_per_frame_asked);
        if (spf != samples_per_frame) {
            flush_batch();
            samples_per_frame = spf;
            ESP_LOGI(TAG, "notification value %u bytes: %u samples per frame",
                     (unsigned)link_value_size(), (unsigned)spf);
            send_device_info(); /* PROTOCOL.md: unprompted after a change of batching */
        }
    }
    if ((events & LINK_EVENT_ANNOUNCE) && !link_host_present()) {
        send_device_info(); /* UDP: the announcement (PROTOCOL.md section 6) */
    }
}

/* ===================================================================== link callbacks */

static imucap_rx_t host_rx; /* touched by the link task only (after app_main set it up) */
static uint8_t host_rx_buf[IMUCAP_RX_BUF_SIZE];

static void wake_app_task(void)
{
    if (app_task_handle != NULL) {
        xTaskNotifyGive(app_task_handle);
    }
}

/* The host's bytes (link task): completes commands and queues them for app_task. */
static bool on_link_rx(const uint8_t *data, size_t len, int64_t rx_us)
{
    bool any = false;
    for (size_t i = 0; i < len; i++) {
        host_event_t e = {.rx_us = rx_us};
        e.event = imucap_rx_push(&host_rx, data[i], &e.cmd);
        if (e.event == IMUCAP_RX_COMMAND || e.event == IMUCAP_RX_VERSION) {
            any = true;
            if (xQueueSend(host_events, &e, 0) == pdTRUE) {
                wake_app_task();
            }
        }
    }
    return any;
}

/* A link event (any task): a flag for app_task. */
static void on_link_event(link_event_t event)
{
    __atomic_fetch_or(&pending_link_events, (uint32_t)event, __ATOMIC_SEQ_CST);
    wake_app_task();
}

/* ===================================================================== tasks */

static void on_sample_timer(void *arg)
{
    (void)arg;
    xTaskNotifyGive(app_task_handle);
}

static void app_task(void *arg)
{
    uint32_t reported_drops = 0;
    uint32_t reported_misses = 0;
    int64_t reported_at_us = 0;
    (void)arg;
    if (sensors_up_at_boot < SENSOR_COUNT) {
        /* USB: waits in the transmit buffer until the host opens the port (if it has room). */
        send_log(IMUCAP_LOG_WARNING, "%u of %u sensors answer", sensors_up_at_boot,
                 (unsigned)SENSOR_COUNT);
    }
    if (AUTOSTART_STREAMING) {
        start_streaming();
        send_device_info(); /* PROTOCOL.md: sent unprompted when streaming starts on its own */
    }
    for (;;) {
        /* Link events first: a host that has gone stops streaming before anything else. */
        handle_link_events(__atomic_exchange_n(&pending_link_events, 0u, __ATOMIC_SEQ_CST));

        host_event_t e;
        while (xQueueReceive(host_events, &e, 0) == pdTRUE) {
            handle_host_event(&e);
        }

        if (streaming) {
            int64_t period = 1000000 / rate_hz;
            int64_t now = esp_timer_get_time();
            if (now >= next_due_us) {
                int64_t late = (now - next_due_us) / period;
                if (late > 0) { /* slots missed: end the batch so its timestamps stay exact */
                    samples_missed += (uint32_t)late;
                    flush_batch();
                    next_due_us += late * period;
                }
                take_sample(next_due_us);
                next_due_us += period;
                check_next_sensor();
            }
        }

        /* At most once a second, between batches: say what was lost. */
        int64_t now = esp_timer_get_time();
        if ((frames_dropped != reported_drops || samples_missed != reported_misses) &&
            streaming && batch_n == 0 && link_host_present() && now - reported_at_us > 1000000) {
            send_log(IMUCAP_LOG_WARNING, "%lu frames dropped, %lu sample slots missed so far",
                     (unsigned long)frames_dropped, (unsigned long)samples_missed);
            reported_drops = frames_dropped;
            reported_misses = samples_missed;
            reported_at_us = now;
        }

        /* Nothing more is waiting: send the partly filled notification or datagram now. */
        link_flush();

        ulTaskNotifyTake(pdTRUE, portMAX_DELAY); /* sample timer, host command or link event */
    }
}

/* ===================================================================== start-up */

void app_main(void)
{
    uint8_t mac[6];

    /* device_id: low 32 bits of the factory MAC; boot_id: hardware RNG with an entropy
     * source on (the radio is not started yet, so enable the bootloader's one for this read;
     * it must be off again before Wi-Fi or Bluetooth start). */
    ESP_ERROR_CHECK(esp_efuse_mac_get_default(mac));
    device_id = ((uint32_t)mac[2] << 24) | ((uint32_t)mac[3] << 16) | ((uint32_t)mac[4] << 8) |
                mac[5];
    bootloader_random_enable();
    do {
        boot_id = esp_random();
    } while (boot_id == 0);
    bootloader_random_disable();

    spi_device_handle_t spi;
    ESP_ERROR_CHECK(icm42688_bus_init(IMU_SPI_HOST, PIN_SCLK, PIN_MOSI, PIN_MISO, SPI_CLOCK_HZ,
                                      &spi));
    for (size_t i = 0; i < SENSOR_COUNT; i++) { /* every CS high before any transfer */
        ESP_ERROR_CHECK(icm42688_attach(&imu[i], spi, SENSORS[i].cs_gpio));
    }
    samples_per_frame = choose_samples_per_frame(rate_hz, samples_per_frame_asked);
    sensors_up_at_boot = probe_sensors(false);
    ESP_LOGI(TAG, "%s: device %08lx boot %08lx, %u of %u sensors answer", FIRMWARE_NAME,
             (unsigned long)device_id, (unsigned long)boot_id, sensors_up_at_boot,
             (unsigned)SENSOR_COUNT);

    const esp_timer_create_args_t timer_args = {
        .callback = on_sample_timer,
        .dispatch_method = ESP_TIMER_TASK,
        .name = "imucap_sample",
    };
    ESP_ERROR_CHECK(esp_timer_create(&timer_args, &sample_timer));
    host_events = xQueueCreate(16, sizeof(host_event_t));
    configASSERT(host_events != NULL);
    imucap_rx_init(&host_rx, host_rx_buf, sizeof host_rx_buf);

    /* The link (link.h): its callbacks may run as soon as it starts; they queue work for
     * app_task, which takes it up at its first pass. */
    const link_config_t link = {
        .device_id = device_id,
        .manufacturer = MANUFACTURER_NAME,
        .model = CHIP_NAME,
        .firmware = FIRMWARE_NAME,
        .cb = {.rx = on_link_rx, .event = on_link_event},
    };
    esp_err_t err = link_init(&link);
    if (err != ESP_OK) {
        /* No reboot loop: say it on the console (UART0) and stay idle. */
        ESP_LOGE(TAG, "%s link failed to start: %s", link_name(), esp_err_to_name(err));
        return;
    }
    ESP_LOGI(TAG, "link: %s", link_name());

    xTaskCreatePinnedToCore(app_task, "imucap_app", 6144, NULL, 10, &app_task_handle, 1);
}
