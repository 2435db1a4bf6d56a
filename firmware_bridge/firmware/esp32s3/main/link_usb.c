/*
 * Link over the ESP32-S3's USB Serial/JTAG controller: a USB CDC-ACM serial port on the host
 * carrying the frame stream of PROTOCOL.md section 1 as it is (link.h).
 */
#include "sdkconfig.h"

#if CONFIG_IMUCAP_LINK_USB

#include <string.h>

#include "driver/usb_serial_jtag.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "link.h"

#define HOST_GONE_AFTER_US (500 * 1000) /* nothing could be written for this long: the host has
                                           closed the port (or is not reading) */

static const char *TAG = "imucap_usb";

static link_callbacks_t cb;
/* Written by the app task (link_write_frame) and the reader task. */
static volatile bool host_present = true;
/* App task only. */
static bool resync_pending;     /* a frame went out cut short: send a 0x00 first */
static int64_t first_failure_us; /* first failed write since the last good one, 0: none */

static void usb_rx_task(void *arg)
{
    uint8_t chunk[64];
    (void)arg;
    for (;;) {
        int n = usb_serial_jtag_read_bytes(chunk, sizeof chunk, portMAX_DELAY);
        int64_t rx_us = esp_timer_get_time();
        if (n <= 0) {
            continue;
        }
        if (!host_present) { /* the host reads again: it just sent something */
            host_present = true;
            cb.event(LINK_EVENT_HOST_PRESENT);
        }
        cb.rx(chunk, (size_t)n, rx_us);
    }
}

esp_err_t link_init(const link_config_t *cfg)
{
    cb = cfg->cb;
    /* Large TX buffer so that a slow host read does not stall sampling. */
    usb_serial_jtag_driver_config_t usb = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
    usb.tx_buffer_size = 16 * 1024;
    usb.rx_buffer_size = 1024;
    esp_err_t err = usb_serial_jtag_driver_install(&usb);
    if (err != ESP_OK) {
        return err;
    }
    /* A lone 0x00 ends whatever partial frame the host may hold (ROM boot text, say). */
    static const uint8_t delimiter = 0;
    usb_serial_jtag_write_bytes(&delimiter, 1, 0);
    if (xTaskCreatePinnedToCore(usb_rx_task, "imucap_usb_rx", 4096, NULL, 11, NULL, 1) !=
        pdPASS) {
        return ESP_ERR_NO_MEM;
    }
    ESP_LOGI(TAG, "USB Serial/JTAG link ready");
    return ESP_OK;
}

const char *link_name(void)
{
    return "USB Serial/JTAG";
}

static void note_failure(void)
{
    int64_t now = esp_timer_get_time();
    if (first_failure_us == 0) {
        first_failure_us = now;
    } else if (host_present && now - first_failure_us > HOST_GONE_AFTER_US) {
        ESP_LOGW(TAG, "host not reading");
        host_present = false;
        cb.event(LINK_EVENT_HOST_GONE);
    }
}

bool link_write_frame(const uint8_t *frame, size_t len)
{
    if (resync_pending) {
        static const uint8_t delimiter = 0;
        if (usb_serial_jtag_write_bytes(&delimiter, 1, 0) != 1) {
            note_failure();
            return false;
        }
        resync_pending = false;
    }
    int written = usb_serial_jtag_write_bytes(frame, len, 0);
    if (written == (int)len) {
        first_failure_us = 0;
        return true;
    }
    if (written > 0) {
        resync_pending = true; /* end the cut frame before the next one */
    }
    note_failure();
    return false;
}

void link_flush(void)
{
    /* The driver sends from its ring buffer on its own. */
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
typedef int link_usb_not_selected_t; /* keeps the translation unit non-empty */
#endif /* CONFIG_IMUCAP_LINK_USB */
