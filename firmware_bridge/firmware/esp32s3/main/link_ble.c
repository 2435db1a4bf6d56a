/*
 * Link over Bluetooth LE: a GATT server on the NimBLE host of ESP-IDF v5.x, as PROTOCOL.md
 * section 5 specifies (link.h).
 *
 *   imucap service   95310001-e026-4a0c-8a12-a68dcdc1c7ff  primary
 *     frames         95310002-...  notify: the device's frame stream, cut by imucap_chunker_t
 *     commands       95310003-...  write without response, write: the host's command stream
 *   Device Information 0x180A: manufacturer, model (the IMU chip), serial (device_id as 8 hex
 *     digits), firmware revision
 *
 * Advertising: connectable, the 128-bit service UUID in the advertising data, the complete
 * local name (imucap-XXXX, or CONFIG_IMUCAP_BLE_NAME) in the scan response. One connection:
 * legacy advertising stops when a central connects and starts again when it leaves. After
 * connecting, the device asks for a 7.5-15 ms interval, latency 0 and a 2 s supervision
 * timeout, and accepts an MTU exchange up to 247 (ble_att_set_preferred_mtu).
 *
 * Threads: GAP/GATT callbacks run in the NimBLE host task; link_write_frame()/link_flush() in
 * main.c's app task, which owns the chunker. The host task only publishes the connection
 * state (handle, subscription, ATT_MTU, a session counter) through volatile variables; the
 * app task picks up changes before it next touches the chunker.
 */
#include "sdkconfig.h"

#if CONFIG_IMUCAP_LINK_BLE

#if !CONFIG_BT_NIMBLE_ENABLED
/* Component config > Bluetooth > Host: NimBLE, or build with the sdkconfig.link_ble fragment. */
#error "imucap link = Bluetooth LE needs Bluetooth with the NimBLE host: see README.md"
#endif

#include <string.h>

#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "host/ble_hs.h"
#include "host/util/util.h"
#include "nimble/nimble_port.h"
#include "nimble/nimble_port_freertos.h"
#include "nvs_flash.h"
#include "services/gap/ble_svc_gap.h"
#include "services/gatt/ble_svc_gatt.h"

#include "imucap_proto.h"
#include "link.h"

/* Connection parameters asked for after connecting (PROTOCOL.md section 5). */
#define CONN_ITVL_MIN 6          /* 7.5 ms, in 1.25 ms units */
#define CONN_ITVL_MAX 12         /* 15 ms */
#define CONN_LATENCY 0
#define CONN_SUPERVISION_TIMEOUT 200 /* 2 s, in 10 ms units */

static const char *TAG = "imucap_ble";

static const ble_uuid128_t service_uuid =
    BLE_UUID128_INIT(IMUCAP_BLE_UUID128_BYTES(IMUCAP_BLE_ID_SERVICE));
static const ble_uuid128_t frames_uuid =
    BLE_UUID128_INIT(IMUCAP_BLE_UUID128_BYTES(IMUCAP_BLE_ID_FRAMES));
static const ble_uuid128_t commands_uuid =
    BLE_UUID128_INIT(IMUCAP_BLE_UUID128_BYTES(IMUCAP_BLE_ID_COMMANDS));

static link_callbacks_t cb;
static char device_name[32];
/* Device Information strings (filled before the services are registered). */
static char dis_manufacturer[IMUCAP_MAX_NAME + 1];
static char dis_model[IMUCAP_MAX_NAME + 1];
static char dis_serial[9];
static char dis_firmware[IMUCAP_MAX_NAME + 1];

static uint8_t own_addr_type;
static uint16_t frames_val_handle; /* filled in by ble_gatts_add_svcs() */

/* Connection state: written by the NimBLE host task, read by the app task. */
static volatile uint16_t conn_handle = BLE_HS_CONN_HANDLE_NONE;
static volatile bool subscribed;   /* the central enabled notifications of the frames */
static volatile uint16_t att_mtu = IMUCAP_BLE_DEFAULT_ATT_MTU;
static volatile uint32_t session;  /* +1 at every subscribe, unsubscribe and disconnect */

/* App task only. */
static uint8_t chunk_buf[IMUCAP_BLE_MAX_VALUE];
static imucap_chunker_t chunker;
static uint32_t chunker_session;
static uint16_t chunker_mtu = IMUCAP_BLE_DEFAULT_ATT_MTU;

static int gap_event(struct ble_gap_event *event, void *arg);

/* ===================================================================== GATT services */

static int frames_access(uint16_t conn, uint16_t attr, struct ble_gatt_access_ctxt *ctxt,
                         void *arg)
{
    (void)conn;
    (void)attr;
    (void)ctxt;
    (void)arg;
    return BLE_ATT_ERR_UNLIKELY; /* notify only: the stack never reads or writes it */
}

static int commands_access(uint16_t conn, uint16_t attr, struct ble_gatt_access_ctxt *ctxt,
                           void *arg)
{
    static uint8_t value[IMUCAP_BLE_MAX_VALUE]; /* host task only */
    int64_t rx_us = esp_timer_get_time();
    uint16_t len = 0;
    (void)attr;
    (void)arg;
    if (ctxt->op != BLE_GATT_ACCESS_OP_WRITE_CHR) {
        return BLE_ATT_ERR_UNLIKELY;
    }
    if (ble_hs_mbuf_to_flat(ctxt->om, value, sizeof value, &len) != 0) {
        return BLE_ATT_ERR_INVALID_ATTR_VALUE_LEN;
    }
    if (conn_handle == BLE_HS_CONN_HANDLE_NONE) {
        conn_handle = conn; /* a write may come before the CONNECT event */
    }
    /* Written values, concatenated in order, are the command byte stream. */
    cb.rx(value, len, rx_us);
    return 0;
}

static int dis_access(uint16_t conn, uint16_t attr, struct ble_gatt_access_ctxt *ctxt,
                      void *arg)
{
    const char *text = arg;
    (void)conn;
    (void)attr;
    if (ctxt->op != BLE_GATT_ACCESS_OP_READ_CHR || text == NULL) {
        return BLE_ATT_ERR_UNLIKELY;
    }
    return os_mbuf_append(ctxt->om, text, (uint16_t)strlen(text)) == 0
               ? 0
               : BLE_ATT_ERR_INSUFFICIENT_RES;
}

static const struct ble_gatt_svc_def gatt_services[] = {
    {
        .type = BLE_GATT_SVC_TYPE_PRIMARY,
        .uuid = &service_uuid.u,
        .characteristics =
            (struct ble_gatt_chr_def[]){
                {
                    .uuid = &frames_uuid.u,
                    .access_cb = frames_access,
                    .flags = BLE_GATT_CHR_F_NOTIFY, /* the stack adds the CCCD */
                    .val_handle = &frames_val_handle,
                },
                {
                    .uuid = &commands_uuid.u,
                    .access_cb = commands_access,
                    .flags = BLE_GATT_CHR_F_WRITE_NO_RSP | BLE_GATT_CHR_F_WRITE,
                },
                {0},
            },
    },
    {
        .type = BLE_GATT_SVC_TYPE_PRIMARY,
        .uuid = BLE_UUID16_DECLARE(IMUCAP_BLE_UUID16_DEVICE_INFORMATION),
        .characteristics =
            (struct ble_gatt_chr_def[]){
                {
                    .uuid = BLE_UUID16_DECLARE(IMUCAP_BLE_UUID16_MANUFACTURER_NAME),
                    .access_cb = dis_access,
                    .arg = dis_manufacturer,
                    .flags = BLE_GATT_CHR_F_READ,
                },
                {
                    .uuid = BLE_UUID16_DECLARE(IMUCAP_BLE_UUID16_MODEL_NUMBER),
                    .access_cb = dis_access,
                    .arg = dis_model,
                    .flags = BLE_GATT_CHR_F_READ,
                },
                {
                    .uuid = BLE_UUID16_DECLARE(IMUCAP_BLE_UUID16_SERIAL_NUMBER),
                    .access_cb = dis_access,
                    .arg = dis_serial,
                    .flags = BLE_GATT_CHR_F_READ,
                },
                {
                    .uuid = BLE_UUID16_DECLARE(IMUCAP_BLE_UUID16_FIRMWARE_REVISION),
                    .access_cb = dis_access,
                    .arg = dis_firmware,
                    .flags = BLE_GATT_CHR_F_READ,
                },
                {0},
            },
    },
    {0},
};

/* ===================================================================== GAP */

static void advertise(void)
{
    struct ble_hs_adv_fields adv;
    struct ble_hs_adv_fields rsp;
    struct ble_gap_adv_params params;
    int rc;

    /* Advertising data: flags (3 bytes) and the 128-bit service UUID (18 bytes). */
    memset(&adv, 0, sizeof adv);
    adv.flags = BLE_HS_ADV_F_DISC_GEN | BLE_HS_ADV_F_BREDR_UNSUP;
    adv.uuids128 = &service_uuid;
    adv.num_uuids128 = 1;
    adv.uuids128_is_complete = 1;
    rc = ble_gap_adv_set_fields(&adv);
    if (rc != 0) {
        ESP_LOGE(TAG, "advertising data: rc=%d", rc);
        return;
    }
    /* Scan response: the complete local name. */
    memset(&rsp, 0, sizeof rsp);
    rsp.name = (const uint8_t *)device_name;
    rsp.name_len = (uint8_t)strlen(device_name);
    rsp.name_is_complete = 1;
    rc = ble_gap_adv_rsp_set_fields(&rsp);
    if (rc != 0) {
        ESP_LOGE(TAG, "scan response: rc=%d", rc);
        return;
    }
    memset(&params, 0, sizeof params);
    params.conn_mode = BLE_GAP_CONN_MODE_UND; /* connectable */
    params.disc_mode = BLE_GAP_DISC_MODE_GEN;
    params.itvl_min = BLE_GAP_ADV_FAST_INTERVAL1_MIN; /* 30-60 ms: found quickly */
    params.itvl_max = BLE_GAP_ADV_FAST_INTERVAL1_MAX;
    rc = ble_gap_adv_start(own_addr_type, NULL, BLE_HS_FOREVER, &params, gap_event, NULL);
    if (rc != 0 && rc != BLE_HS_EALREADY) {
        ESP_LOGE(TAG, "advertising start: rc=%d", rc);
        return;
    }
    ESP_LOGI(TAG, "advertising as %s", device_name);
}

/* The host leaves (unsubscribe, disconnect): streaming stops, the chunker starts afresh. */
static void end_session(void)
{
    session++;
    subscribed = false;
    cb.event(LINK_EVENT_HOST_GONE);
}

static int gap_event(struct ble_gap_event *event, void *arg)
{
    struct ble_gap_conn_desc desc;
    (void)arg;
    switch (event->type) {
    case BLE_GAP_EVENT_CONNECT:
        if (event->connect.status != 0) {
            ESP_LOGW(TAG, "connection failed: status=%d", event->connect.status);
            conn_handle = BLE_HS_CONN_HANDLE_NONE;
            advertise();
            return 0;
        }
        conn_handle = event->connect.conn_handle;
        ESP_LOGI(TAG, "connected (handle %u)", (unsigned)conn_handle);
        {
            /* End any partial command left by an earlier connection. */
            static const uint8_t delimiter = 0;
            cb.rx(&delimiter, 1, esp_timer_get_time());
        }
        {
            struct ble_gap_upd_params p = {
                .itvl_min = CONN_ITVL_MIN,
                .itvl_max = CONN_ITVL_MAX,
                .latency = CONN_LATENCY,
                .supervision_timeout = CONN_SUPERVISION_TIMEOUT,
                .min_ce_len = 0,
                .max_ce_len = 0,
            };
            int rc = ble_gap_update_params(event->connect.conn_handle, &p);
            if (rc != 0) {
                ESP_LOGW(TAG, "connection parameter request: rc=%d", rc);
            }
        }
        return 0;

    case BLE_GAP_EVENT_DISCONNECT:
        ESP_LOGI(TAG, "disconnected: reason=0x%x", event->disconnect.reason);
        conn_handle = BLE_HS_CONN_HANDLE_NONE;
        end_session();
        if (att_mtu != IMUCAP_BLE_DEFAULT_ATT_MTU) {
            att_mtu = IMUCAP_BLE_DEFAULT_ATT_MTU;
            cb.event(LINK_EVENT_MTU_CHANGED);
        }
        advertise();
        return 0;

    case BLE_GAP_EVENT_CONN_UPDATE:
        if (ble_gap_conn_find(event->conn_update.conn_handle, &desc) == 0) {
            ESP_LOGI(TAG, "connection interval %u.%02u ms, latency %u, timeout %u ms",
                     (unsigned)(desc.conn_itvl * 125 / 100), (unsigned)(desc.conn_itvl * 125 % 100),
                     (unsigned)desc.conn_latency, (unsigned)desc.supervision_timeout * 10u);
        }
        return 0;

    case BLE_GAP_EVENT_ADV_COMPLETE:
        if (conn_handle == BLE_HS_CONN_HANDLE_NONE) {
            advertise();
        }
        return 0;

    case BLE_GAP_EVENT_SUBSCRIBE:
        if (event->subscribe.attr_handle == frames_val_handle) {
            if (event->subscribe.cur_notify && !subscribed) {
                conn_handle = event->subscribe.conn_handle;
                session++;
                subscribed = true;
                ESP_LOGI(TAG, "host subscribed to frames");
                cb.event(LINK_EVENT_HOST_PRESENT);
            } else if (!event->subscribe.cur_notify && subscribed &&
                       event->subscribe.reason != BLE_GAP_SUBSCRIBE_REASON_TERM) {
                /* (at a disconnect, BLE_GAP_EVENT_DISCONNECT ends the session) */
                ESP_LOGI(TAG, "host unsubscribed from frames");
                end_session();
            }
        }
        return 0;

    case BLE_GAP_EVENT_MTU:
        ESP_LOGI(TAG, "ATT_MTU %u", (unsigned)event->mtu.value);
        att_mtu = event->mtu.value;
        cb.event(LINK_EVENT_MTU_CHANGED);
        return 0;

    default:
        return 0;
    }
}

static void on_sync(void)
{
    int rc = ble_hs_util_ensure_addr(0);
    if (rc == 0) {
        rc = ble_hs_id_infer_auto(0, &own_addr_type);
    }
    if (rc != 0) {
        ESP_LOGE(TAG, "no Bluetooth address: rc=%d", rc);
        return;
    }
    advertise();
}

static void on_reset(int reason)
{
    ESP_LOGW(TAG, "NimBLE host reset: reason=%d", reason);
    conn_handle = BLE_HS_CONN_HANDLE_NONE;
    end_session();
}

static void host_task(void *arg)
{
    (void)arg;
    nimble_port_run(); /* returns only after nimble_port_stop() */
    nimble_port_freertos_deinit();
}

/* ===================================================================== link.h */

static void copy_string(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, src != NULL ? src : "", n);
    dst[n] = '\0';
}

static bool notify_value(void *ctx, const uint8_t *data, size_t len)
{
    uint16_t conn = conn_handle;
    struct os_mbuf *om;
    (void)ctx;
    if (!subscribed || conn == BLE_HS_CONN_HANDLE_NONE) {
        return false;
    }
    /* Out of mbufs (the link is slower than the stream): the value is lost, as PROTOCOL.md
     * allows; the host sees damaged frames and a sequence gap. */
    om = ble_hs_mbuf_from_flat(data, (uint16_t)len);
    if (om == NULL) {
        return false;
    }
    /* Consumes om whatever the outcome. The older name, which we expect in every ESP-IDF
     * v5.x; newer NimBLE releases call it ble_gatts_notify_custom() and keep this one as a
     * deprecated alias (not checked against a real build, see README.md). */
    return ble_gattc_notify_custom(conn, frames_val_handle, om) == 0;
}

esp_err_t link_init(const link_config_t *cfg)
{
    esp_err_t err;
    int rc;

    cb = cfg->cb;
    if (CONFIG_IMUCAP_BLE_NAME[0] != '\0') {
        copy_string(device_name, sizeof device_name, CONFIG_IMUCAP_BLE_NAME);
    } else {
        imucap_ble_default_name(device_name, cfg->device_id);
    }
    copy_string(dis_manufacturer, sizeof dis_manufacturer, cfg->manufacturer);
    copy_string(dis_model, sizeof dis_model, cfg->model);
    copy_string(dis_firmware, sizeof dis_firmware, cfg->firmware);
    imucap_hex(dis_serial, cfg->device_id, 8);

    if (!imucap_chunker_init(&chunker, chunk_buf, sizeof chunk_buf, IMUCAP_BLE_DEFAULT_ATT_MTU,
                             notify_value, NULL)) {
        return ESP_ERR_INVALID_STATE;
    }

    /* NVS holds the PHY calibration data. */
    err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    if (err != ESP_OK) {
        return err;
    }
    err = nimble_port_init(); /* controller and host (ESP-IDF v5.x) */
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "nimble_port_init: %s", esp_err_to_name(err));
        return err;
    }
    ble_hs_cfg.sync_cb = on_sync;
    ble_hs_cfg.reset_cb = on_reset;

    ble_svc_gap_init();
    ble_svc_gatt_init();
    rc = ble_gatts_count_cfg(gatt_services);
    if (rc == 0) {
        rc = ble_gatts_add_svcs(gatt_services);
    }
    if (rc == 0) {
        rc = ble_svc_gap_device_name_set(device_name);
    }
    if (rc == 0) {
        rc = ble_att_set_preferred_mtu(IMUCAP_BLE_PREFERRED_ATT_MTU);
    }
    if (rc != 0) {
        ESP_LOGE(TAG, "GATT setup: rc=%d", rc);
        return ESP_FAIL;
    }
    nimble_port_freertos_init(host_task);
    ESP_LOGI(TAG, "Bluetooth LE link: %s, serial %s", device_name, dis_serial);
    return ESP_OK;
}

const char *link_name(void)
{
    return "Bluetooth LE";
}

/* Catches up with the host task: a new session starts with an empty chunker, and a new
 * ATT_MTU changes the value size. */
static void sync_chunker(void)
{
    uint32_t s = session;
    uint16_t mtu = att_mtu;
    if (s != chunker_session) {
        chunker_session = s;
        imucap_chunker_reset(&chunker);
    }
    if (mtu != chunker_mtu) {
        chunker_mtu = mtu;
        if (!imucap_chunker_set_mtu(&chunker, mtu)) { /* below 23: cannot happen */
            ESP_LOGW(TAG, "ATT_MTU %u refused, value size unchanged", (unsigned)mtu);
        }
    }
}

bool link_write_frame(const uint8_t *frame, size_t len)
{
    uint32_t dropped;
    sync_chunker();
    if (!subscribed) {
        return false;
    }
    dropped = chunker.values_dropped;
    imucap_chunker_write(&chunker, frame, len);
    return chunker.values_dropped == dropped;
}

void link_flush(void)
{
    sync_chunker();
    imucap_chunker_flush(&chunker);
}

bool link_host_present(void)
{
    return subscribed;
}

size_t link_value_size(void)
{
    return IMUCAP_BLE_VALUE_SIZE((size_t)att_mtu);
}

#else
typedef int link_ble_not_selected_t; /* keeps the translation unit non-empty */
#endif /* CONFIG_IMUCAP_LINK_BLE */
