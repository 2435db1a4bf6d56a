/*
 * The link to the host: one small interface, three implementations chosen at build time
 * (idf.py menuconfig -> imucap link):
 *
 *   link_usb.c  USB Serial/JTAG, a byte stream (CONFIG_IMUCAP_LINK_USB, the default)
 *   link_ble.c  Bluetooth LE GATT server on NimBLE, PROTOCOL.md section 5 (CONFIG_IMUCAP_LINK_BLE)
 *   link_udp.c  Wi-Fi station sending UDP datagrams, PROTOCOL.md section 6 (CONFIG_IMUCAP_LINK_UDP)
 *
 * Exactly one of them is compiled in (each file is empty unless its option is set). main.c
 * keeps the protocol logic: it encodes frames, hands each to link_write_frame(), and gets the
 * host's bytes back through the rx callback, which feeds its command receiver.
 *
 * Threads. link_write_frame() and link_flush() are called from ONE task (main.c's app_task).
 * The callbacks are called from the link's own task (the USB reader, the NimBLE host task or
 * the UDP receiver), rx never concurrently with itself; event may also come from the task
 * that calls link_write_frame() (USB: "host not reading"). Callbacks must not block.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"

typedef enum {
    /* A host is there: BLE central subscribed to the frames characteristic, UDP host sent its
     * first command, USB bytes arrived after the host had stopped reading. */
    LINK_EVENT_HOST_PRESENT = 1u << 0,
    /* The host left: BLE disconnect or unsubscribe, UDP 5 s without a command, USB nothing
     * written for 0.5 s. The device stops streaming (PROTOCOL.md section 4). */
    LINK_EVENT_HOST_GONE = 1u << 1,
    /* UDP without a host, once a second: send DEVICE_INFO (the announcement). */
    LINK_EVENT_ANNOUNCE = 1u << 2,
    /* BLE: the ATT_MTU changed, so did link_value_size(); batching may be chosen again. */
    LINK_EVENT_MTU_CHANGED = 1u << 3,
} link_event_t;

typedef struct {
    /* Bytes of the host's command stream, with the device clock (esp_timer_get_time()) when
     * they arrived. Returns true when they completed at least one host command (or a frame of
     * another major version): the UDP link then takes the sender as its host. */
    bool (*rx)(const uint8_t *data, size_t len, int64_t rx_us);
    /* A link event (one LINK_EVENT_* value). */
    void (*event)(link_event_t event);
} link_callbacks_t;

typedef struct {
    uint32_t device_id;       /* BLE default name imucap-XXXX and serial number */
    const char *manufacturer; /* BLE Device Information strings */
    const char *model;        /* the IMU chip */
    const char *firmware;
    link_callbacks_t cb;
} link_config_t;

/* Starts the link (drivers, radio, tasks). Call once, after device_id and boot_id are known
 * (the radio must be off while boot_id is drawn with the bootloader entropy source). */
esp_err_t link_init(const link_config_t *cfg);

/* Human-readable name of the compiled-in link, for logs. */
const char *link_name(void);

/* Queues one whole encoded frame (delimiter included) without blocking. false: dropped (no
 * host, no buffer space, radio down); the caller has spent its sequence number all the same,
 * so the host sees the gap. */
bool link_write_frame(const uint8_t *frame, size_t len);

/* Nothing more is waiting: send what is held (the partly filled BLE notification or UDP
 * datagram). USB: nothing to do. */
void link_flush(void);

/* Whether a host is there to read the frames (see LINK_EVENT_HOST_PRESENT). */
bool link_host_present(void);

/* Frame-stream bytes one packet of the link carries now: the BLE notification value size
 * (ATT_MTU - 3), 0 for links without such a limit (USB, UDP). main.c batches more samples per
 * frame when a one-sample frame does not fit in one value (PROTOCOL.md section 5, Budget). */
size_t link_value_size(void);
