/*
 * imucap wire protocol v1: portable C reference implementation.
 *
 * The specification is firmware_bridge/PROTOCOL.md; the byte-exact examples are
 * firmware_bridge/vectors/v1.json. imucap's test suite compiles this file with the host C
 * compiler (-std=c99 -Wall -Wextra -Werror -pedantic) and checks it against those vectors in
 * both directions, so what is written here is what the Python host reads.
 *
 * Rules of this code
 *   - C99, no malloc, no global state, no platform headers: only <stdint.h>, <stddef.h>,
 *     <stdbool.h> and <string.h>. Every buffer is the caller's.
 *   - Byte order is handled byte by byte, so the code is the same on little- and big-endian
 *     CPUs and never reads a multi-byte value through a cast pointer (no alignment needs).
 *   - Nothing here blocks or keeps time; the firmware owns clocks, sensors and the link.
 *
 * A frame on the wire is COBS(header | payload | CRC-32) followed by one 0x00 byte:
 *   header  = u8 version (major << 4 | minor), u8 type, u16 seq      (4 bytes)
 *   payload = type-specific, little-endian                            (0..4088 bytes)
 *   CRC-32  = zlib's CRC of header and payload, little-endian         (4 bytes)
 *
 * Sending (device side): fill a message struct and call imucap_encode_<message>(out, cap, seq,
 * &msg); it writes the whole frame, delimiter included, and returns its length, or 0 when `cap`
 * is too small or the message is invalid. The frame encoders stream: no body buffer is needed
 * besides `out`. The device keeps ONE u16 counter for every frame it sends (see PROTOCOL.md,
 * "Sequence numbers"): pass it as `seq`, then add 1.
 *
 * Receiving (device side): keep an imucap_rx_t on a caller buffer and push every received
 * byte with imucap_rx_push(); it returns IMUCAP_RX_COMMAND with the decoded host command
 * when a frame completes. Damaged frames, frames of another major version and message types
 * the device does not handle are counted and reported, never returned as commands.
 *
 * Decoding any frame (host side, tests, tools): imucap_decode_frame() (COBS + checks) or
 * imucap_decode_body() (checks only) give an imucap_frame_t with type, seq and a payload
 * pointer; the imucap_parse_<message>() functions read the payload fields.
 */
#ifndef IMUCAP_PROTO_H
#define IMUCAP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ constants */

#define IMUCAP_PROTO_MAJOR 1u
#define IMUCAP_PROTO_MINOR 0u
/* Header version byte: major in the high nibble, minor in the low nibble (0x10 is 1.0). */
#define IMUCAP_VERSION_BYTE(major, minor) \
    ((uint8_t)((((unsigned)(major) & 0x0Fu) << 4) | ((unsigned)(minor) & 0x0Fu)))
#define IMUCAP_VERSION IMUCAP_VERSION_BYTE(IMUCAP_PROTO_MAJOR, IMUCAP_PROTO_MINOR)

#define IMUCAP_HEADER_SIZE 4u
#define IMUCAP_CRC_SIZE 4u
/* Smallest valid body: header and CRC, empty payload. */
#define IMUCAP_MIN_BODY (IMUCAP_HEADER_SIZE + IMUCAP_CRC_SIZE)
/* Largest body (header + payload + CRC) a receiver must accept; longer ones are dropped. */
#define IMUCAP_MAX_BODY 4096u
#define IMUCAP_MAX_PAYLOAD (IMUCAP_MAX_BODY - IMUCAP_MIN_BODY)
/* Most bytes COBS makes of n bytes (canonical COBS: one code byte per 254 bytes, plus one). */
#define IMUCAP_COBS_MAX_ENCODED(n) ((n) + (n) / 254u + 1u)
/* Longest encoded frame, delimiter excluded (4113) and included (4114). */
#define IMUCAP_MAX_ENCODED IMUCAP_COBS_MAX_ENCODED(IMUCAP_MAX_BODY)
#define IMUCAP_MAX_FRAME (IMUCAP_MAX_ENCODED + 1u)
/* Buffer size that always holds the frame of a payload of `payload_len` bytes. */
#define IMUCAP_FRAME_SIZE(payload_len) \
    (IMUCAP_COBS_MAX_ENCODED((payload_len) + IMUCAP_MIN_BODY) + 1u)

#define IMUCAP_MAX_SENSORS 16u
/* PROTOCOL.md limits every string field to 32 bytes; encoders refuse longer strings. */
#define IMUCAP_MAX_NAME 32u

/* Fixed parts of payloads. */
#define IMUCAP_DEVICE_INFO_FIXED 22u
#define IMUCAP_SAMPLES_HEADER 18u
#define IMUCAP_PONG_SIZE 28u
#define IMUCAP_ACK_SIZE 4u
#define IMUCAP_SET_RATE_SIZE 3u
#define IMUCAP_PING_SIZE 12u
/* Frame buffer size for a SAMPLES message of n samples x s sensors x v values per sensor. */
#define IMUCAP_SAMPLES_FRAME_SIZE(n, s, v) \
    IMUCAP_FRAME_SIZE(IMUCAP_SAMPLES_HEADER + 2u * (n) * (s) * (v))
/* Frame buffer size that holds any DEVICE_INFO (16 sites, every string at the cut length). */
#define IMUCAP_DEVICE_INFO_FRAME_MAX \
    IMUCAP_FRAME_SIZE(IMUCAP_DEVICE_INFO_FIXED + (2u + IMUCAP_MAX_SENSORS) * (1u + IMUCAP_MAX_NAME))
/* Receive buffer a device needs for every v1 host command (PING is the longest: 21 encoded
 * bytes); the extra room lets a later minor version append fields. Host commands longer than
 * the buffer are dropped and counted in oversize_frames. */
#define IMUCAP_RX_BUF_SIZE 64u

/* Message types: below 0x80 device -> host, 0x80 and up host -> device. */
enum {
    IMUCAP_MSG_DEVICE_INFO = 0x01,
    IMUCAP_MSG_SAMPLES = 0x02,
    IMUCAP_MSG_PONG = 0x03,
    IMUCAP_MSG_ACK = 0x04,
    IMUCAP_MSG_LOG = 0x05,
    IMUCAP_MSG_GET_INFO = 0x81,
    IMUCAP_MSG_START = 0x82,
    IMUCAP_MSG_STOP = 0x83,
    IMUCAP_MSG_SET_RATE = 0x84,
    IMUCAP_MSG_PING = 0x85
};

/* SAMPLES content bits; a sensor record holds the set blocks in this order. */
enum {
    IMUCAP_CONTENT_ACCEL = 0x01, /* 3 values: x, y, z */
    IMUCAP_CONTENT_GYRO = 0x02,  /* 3 values: x, y, z */
    IMUCAP_CONTENT_MAG = 0x04,   /* 3 values: x, y, z */
    IMUCAP_CONTENT_QUAT = 0x08   /* 4 values: w, x, y, z (Q14: 16384 is 1.0) */
};

/* ACK status. */
enum {
    IMUCAP_ACK_OK = 0,
    IMUCAP_ACK_UNSUPPORTED = 1,
    IMUCAP_ACK_BAD_ARGUMENT = 2,
    IMUCAP_ACK_BUSY = 3
};

/* LOG levels. */
enum {
    IMUCAP_LOG_DEBUG = 0,
    IMUCAP_LOG_INFO = 1,
    IMUCAP_LOG_WARNING = 2,
    IMUCAP_LOG_ERROR = 3
};

/* Result of decoding and parsing. */
typedef enum {
    IMUCAP_OK = 0,
    IMUCAP_ERR_COBS,     /* invalid COBS (zero code byte, block past the end) */
    IMUCAP_ERR_SHORT,    /* body shorter than header + CRC (8 bytes), or empty frame */
    IMUCAP_ERR_OVERSIZE, /* body longer than IMUCAP_MAX_BODY, or frame longer than the buffer */
    IMUCAP_ERR_CRC,      /* CRC-32 mismatch */
    IMUCAP_ERR_VERSION,  /* another major protocol version (header fields are still filled) */
    IMUCAP_ERR_PAYLOAD,  /* payload too short or inconsistent for its type */
    IMUCAP_ERR_TYPE      /* message type not handled by this call */
} imucap_status_t;

/* ------------------------------------------------------------------ message structs */

/* A byte string: `len` bytes at `ptr`, NOT zero-terminated (decoded strings point into the
 * frame buffer). UTF-8 by protocol; this code neither checks nor changes the bytes. */
typedef struct {
    const char *ptr;
    size_t len;
} imucap_str_t;

/* 0x01 DEVICE_INFO. */
typedef struct {
    uint8_t proto_major;       /* IMUCAP_PROTO_MAJOR */
    uint8_t proto_minor;       /* IMUCAP_PROTO_MINOR */
    uint32_t device_id;        /* stable board id, e.g. low 32 bits of the MAC */
    uint32_t boot_id;          /* random at every power-up */
    uint16_t rate_hz;          /* output sample rate, 1..1000 */
    uint8_t samples_per_frame; /* nominal samples per SAMPLES frame */
    uint8_t sensor_count;      /* 1..16; the number of entries of sites[] used */
    uint8_t content;           /* IMUCAP_CONTENT_* bits */
    uint16_t accel_range_g;    /* full scale +-g */
    uint16_t gyro_range_dps;   /* full scale +-deg/s */
    uint16_t mag_range_ut;     /* full scale +-uT, 0 without magnetometer */
    bool streaming;            /* SAMPLES are being sent */
    imucap_str_t chip;         /* e.g. "ICM-42688-P" */
    imucap_str_t firmware;     /* e.g. "imucap-ref 1.0.0" */
    imucap_str_t sites[IMUCAP_MAX_SENSORS];
} imucap_device_info_t;

/* 0x02 SAMPLES: n_samples x sensor_count records, sample-major, each record holding
 * imucap_values_per_sensor(content) int16 values. */
typedef struct {
    uint64_t t0_us;       /* device time of sample 0, us since power-up */
    uint32_t dt_us;       /* time between samples */
    uint8_t n_samples;    /* 1..255 */
    uint8_t sensor_count; /* 1..16 */
    uint8_t content;      /* IMUCAP_CONTENT_* bits; at least one of the four */
    uint16_t sensor_ok;   /* bit i: sensor i valid for the whole batch (else its values are 0) */
    /* Encoding reads `values` (native int16, n_samples * sensor_count * values_per_sensor
     * entries); when it is NULL it copies `records` unchanged. Parsing sets values = NULL and
     * points `records` at the little-endian int16 data inside the payload: read it with
     * imucap_samples_value(). */
    const int16_t *values;
    const uint8_t *records;
} imucap_samples_t;

/* 0x03 PONG. */
typedef struct {
    uint32_t nonce;        /* copied from the PING */
    uint64_t host_time_us; /* copied from the PING */
    uint64_t device_rx_us; /* device clock when the PING arrived */
    uint64_t device_tx_us; /* device clock when the PONG is sent */
} imucap_pong_t;

/* 0x04 ACK. */
typedef struct {
    uint16_t command_seq; /* header seq of the command answered */
    uint8_t command_type; /* its type */
    uint8_t status;       /* IMUCAP_ACK_* */
} imucap_ack_t;

/* 0x05 LOG: level byte, then UTF-8 text up to the end of the payload (no length byte). */
typedef struct {
    uint8_t level;
    imucap_str_t text;
} imucap_log_t;

/* 0x84 SET_RATE. */
typedef struct {
    uint16_t rate_hz;
    uint8_t samples_per_frame; /* 0: the device chooses */
} imucap_set_rate_t;

/* 0x85 PING. */
typedef struct {
    uint32_t nonce;
    uint64_t host_time_us;
} imucap_ping_t;

/* A host command (GET_INFO, START, STOP, SET_RATE, PING) with its header fields. */
typedef struct {
    uint8_t type;  /* IMUCAP_MSG_* (0x81..0x85) */
    uint16_t seq;  /* the host's sequence number: echo it in the ACK */
    uint8_t major; /* header version */
    uint8_t minor;
    imucap_set_rate_t set_rate; /* valid when type == IMUCAP_MSG_SET_RATE */
    imucap_ping_t ping;         /* valid when type == IMUCAP_MSG_PING */
} imucap_cmd_t;

/* A checked frame body: header fields and the payload (inside the caller's buffer). */
typedef struct {
    uint8_t version; /* raw header byte */
    uint8_t major;
    uint8_t minor;
    uint8_t type;
    uint16_t seq;
    const uint8_t *payload;
    size_t payload_len;
} imucap_frame_t;

/* ------------------------------------------------------------------ little-endian helpers */

void imucap_put_le16(uint8_t *p, uint16_t v);
void imucap_put_le32(uint8_t *p, uint32_t v);
void imucap_put_le64(uint8_t *p, uint64_t v);
uint16_t imucap_get_le16(const uint8_t *p);
uint32_t imucap_get_le32(const uint8_t *p);
uint64_t imucap_get_le64(const uint8_t *p);
int16_t imucap_get_le_i16(const uint8_t *p);

/* A string view of a zero-terminated C string (length by strlen). */
imucap_str_t imucap_cstr(const char *s);

/* Number of int16 values in one sensor record for `content` (unknown bits count 0). */
unsigned imucap_values_per_sensor(uint8_t content);

/* Name of a status, for logs ("ok", "cobs", "short", "oversize", "crc", "version",
 * "payload", "type"). */
const char *imucap_status_name(imucap_status_t status);

/* ------------------------------------------------------------------ CRC-32 and COBS */

/* CRC-32 of zlib/Ethernet/PNG (reflected 0x04C11DB7, init and final XOR 0xFFFFFFFF).
 * imucap_crc32("123456789", 9) == 0xCBF43926. imucap_crc32_update(crc, ...) continues a CRC
 * over more bytes exactly like zlib's crc32(crc, ...); start with crc = 0. */
uint32_t imucap_crc32(const uint8_t *data, size_t len);
uint32_t imucap_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

/* Canonical COBS encoding of `len` bytes of `src` into `dst` (no 0x00 delimiter appended; a
 * body ending exactly after a full 254-byte block gets no trailing empty block). `src` and
 * `dst` must not overlap. Returns the encoded length (always >= 1), or 0 when `cap` is too
 * small; IMUCAP_COBS_MAX_ENCODED(len) bytes always suffice. */
size_t imucap_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap);

/* Decodes one COBS block chain of `len` bytes (delimiter excluded) into `dst`. `dst` may be
 * `src` (decoding in place; the output is never longer than the input). Returns true and the
 * decoded length in *out_len, or false for an empty input, a 0x00 code byte, a block running
 * past the end, or a decoded length above `cap`. */
bool imucap_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                        size_t *out_len);

/* ------------------------------------------------------------------ frame writer */

/* Streams one frame into a caller buffer: header, payload bytes, CRC, COBS and the 0x00
 * delimiter, with no intermediate body buffer. Use it for payloads the imucap_encode_*()
 * calls do not cover (a later minor version's appended fields, a new message type):
 *
 *     imucap_writer_t w;
 *     imucap_writer_begin(&w, out, sizeof out, IMUCAP_VERSION, IMUCAP_MSG_ACK, seq);
 *     imucap_put_ack(&w, &ack);
 *     imucap_writer_u8(&w, 42);          // more fields
 *     size_t n = imucap_writer_end(&w);  // frame length, or 0
 *
 * Errors (buffer full, invalid message, body over IMUCAP_MAX_BODY) are sticky: later calls
 * do nothing and imucap_writer_end() returns 0. Treat the fields as private. */
typedef struct {
    uint8_t *out;
    size_t cap;
    size_t pos;      /* next free byte of out */
    size_t code_pos; /* where the code byte of the open COBS block goes */
    uint8_t code;    /* 1 + data bytes in the open block */
    uint32_t crc;    /* CRC register over the body so far (not finalised) */
    size_t body_len; /* header + payload bytes so far */
    bool failed;
} imucap_writer_t;

void imucap_writer_begin(imucap_writer_t *w, uint8_t *out, size_t cap, uint8_t version,
                         uint8_t type, uint16_t seq);
void imucap_writer_bytes(imucap_writer_t *w, const uint8_t *data, size_t len);
void imucap_writer_u8(imucap_writer_t *w, uint8_t v);
void imucap_writer_u16(imucap_writer_t *w, uint16_t v);
void imucap_writer_u32(imucap_writer_t *w, uint32_t v);
void imucap_writer_u64(imucap_writer_t *w, uint64_t v);
void imucap_writer_i16(imucap_writer_t *w, int16_t v);
/* u8 length then the bytes; a string over IMUCAP_MAX_NAME bytes fails the writer. */
void imucap_writer_str(imucap_writer_t *w, imucap_str_t s);
/* Marks the frame invalid: imucap_writer_end() will return 0. */
void imucap_writer_fail(imucap_writer_t *w);
/* Appends the CRC, closes COBS, appends 0x00. Returns the frame length or 0. */
size_t imucap_writer_end(imucap_writer_t *w);

/* Payload writers (after imucap_writer_begin with the matching type). They mark the writer
 * failed for an invalid message: DEVICE_INFO with sensor_count outside 1..16; SAMPLES with
 * n_samples 0, sensor_count outside 1..16, no known content bit, or no data. */
void imucap_put_device_info(imucap_writer_t *w, const imucap_device_info_t *m);
void imucap_put_samples(imucap_writer_t *w, const imucap_samples_t *m);
void imucap_put_pong(imucap_writer_t *w, const imucap_pong_t *m);
void imucap_put_ack(imucap_writer_t *w, const imucap_ack_t *m);
void imucap_put_log(imucap_writer_t *w, uint8_t level, imucap_str_t text);
/* The payload of a host command: nothing, SET_RATE's or PING's fields. */
void imucap_put_command(imucap_writer_t *w, const imucap_cmd_t *cmd);

/* ------------------------------------------------------------------ frame encoders */

/* Each writes one complete frame of protocol version IMUCAP_VERSION (1.0) with sequence
 * number `seq` into out[0..cap) and returns its length, delimiter included; 0 when the frame
 * does not fit in `cap` or the message is invalid (see the payload writers). Buffer sizes that
 * always suffice: IMUCAP_DEVICE_INFO_FRAME_MAX, IMUCAP_SAMPLES_FRAME_SIZE(n, s, v),
 * IMUCAP_FRAME_SIZE(IMUCAP_PONG_SIZE) and so on. */
size_t imucap_encode_device_info(uint8_t *out, size_t cap, uint16_t seq,
                                 const imucap_device_info_t *m);
size_t imucap_encode_samples(uint8_t *out, size_t cap, uint16_t seq, const imucap_samples_t *m);
size_t imucap_encode_pong(uint8_t *out, size_t cap, uint16_t seq, const imucap_pong_t *m);
size_t imucap_encode_ack(uint8_t *out, size_t cap, uint16_t seq, const imucap_ack_t *m);
/* `text` is `len` bytes of UTF-8 (no terminator needed); the payload carries it whole. */
size_t imucap_encode_log(uint8_t *out, size_t cap, uint16_t seq, uint8_t level, const char *text,
                         size_t len);
/* Host side: encodes cmd->type (0x81..0x85) with its arguments; cmd->seq, major and minor are
 * ignored (seq is the argument). Returns 0 for another type. */
size_t imucap_encode_command(uint8_t *out, size_t cap, uint16_t seq, const imucap_cmd_t *cmd);

/* ------------------------------------------------------------------ decoding */

/* Checks a decoded body (header | payload | CRC, `len` bytes): length (IMUCAP_ERR_SHORT,
 * IMUCAP_ERR_OVERSIZE), CRC (IMUCAP_ERR_CRC), then the major version (IMUCAP_ERR_VERSION:
 * any minor of major 1 is accepted). On IMUCAP_OK and IMUCAP_ERR_VERSION, *f holds the header
 * fields and the payload (pointing into `body`; the CRC is not part of it). */
imucap_status_t imucap_decode_body(const uint8_t *body, size_t len, imucap_frame_t *f);

/* COBS-decodes one received frame IN PLACE (`len` bytes; one trailing 0x00 delimiter is
 * allowed and ignored) and checks it as imucap_decode_body() does; *f then points into `buf`.
 * Returns IMUCAP_ERR_SHORT for an empty frame, IMUCAP_ERR_OVERSIZE for more than
 * IMUCAP_MAX_ENCODED bytes, IMUCAP_ERR_COBS for invalid COBS. */
imucap_status_t imucap_decode_frame(uint8_t *buf, size_t len, imucap_frame_t *f);

/* Payload parsers: `p`/`len` is imucap_frame_t.payload/payload_len. They return
 * IMUCAP_ERR_PAYLOAD when the payload is shorter than the fields they read or inconsistent
 * (DEVICE_INFO: sensor count outside 1..16 or a string past the end; SAMPLES: no samples,
 * sensor count outside 1..16, no known content bit, or fewer values than announced). Bytes
 * after the known fields are ignored (later minor versions append there). Strings and sample
 * records point into `p`. */
imucap_status_t imucap_parse_device_info(const uint8_t *p, size_t len, imucap_device_info_t *m);
imucap_status_t imucap_parse_samples(const uint8_t *p, size_t len, imucap_samples_t *m);
imucap_status_t imucap_parse_pong(const uint8_t *p, size_t len, imucap_pong_t *m);
imucap_status_t imucap_parse_ack(const uint8_t *p, size_t len, imucap_ack_t *m);
imucap_status_t imucap_parse_log(const uint8_t *p, size_t len, imucap_log_t *m);
/* A host command frame: fills *cmd (type, seq, version and arguments); IMUCAP_ERR_TYPE when
 * f->type is not a host command of v1. */
imucap_status_t imucap_parse_command(const imucap_frame_t *f, imucap_cmd_t *cmd);

/* Value `index` (sample-major: ((sample * sensor_count) + sensor) * values_per_sensor + k)
 * of a SAMPLES message, from `values` or else from the little-endian `records`. */
int16_t imucap_samples_value(const imucap_samples_t *m, size_t index);

/* ------------------------------------------------------------------ byte-at-a-time receiver */

/* What one received byte completed. */
typedef enum {
    IMUCAP_RX_NONE = 0, /* nothing yet (byte stored, or an empty frame) */
    IMUCAP_RX_COMMAND,  /* a valid host command: see *cmd */
    IMUCAP_RX_BAD,      /* a damaged frame was dropped (counted) */
    IMUCAP_RX_VERSION,  /* a frame of another major version was dropped; cmd->type, seq, major
                           and minor say what it was (answer with a LOG, for example) */
    IMUCAP_RX_IGNORED   /* a valid frame of a type this receiver does not handle (device
                           types, or types of a later minor version); cmd->type says which */
} imucap_rx_event_t;

/* Counters, named like the Python decoder's (imucap.firmware_bridge.codec.DecoderCounters). */
typedef struct {
    uint32_t bytes_in;
    uint32_t frames_ok; /* valid frames, unknown types included */
    uint32_t crc_errors;
    uint32_t cobs_errors;
    uint32_t short_frames;
    uint32_t oversize_frames; /* longer than the receive buffer, or body over 4096 bytes */
    uint32_t payload_errors;
    uint32_t version_errors; /* not part of bad_frames, as in Python (where it raises) */
    uint32_t unknown_types;
} imucap_rx_counters_t;

/* Receiver state; treat the fields as private except `counters`. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow; /* the frame being received did not fit in buf */
    imucap_rx_counters_t counters;
} imucap_rx_t;

/* Starts a receiver on buf[0..cap): encoded frames longer than `cap` bytes are dropped as
 * oversize. IMUCAP_RX_BUF_SIZE suits a device; IMUCAP_MAX_ENCODED accepts every frame. */
void imucap_rx_init(imucap_rx_t *rx, uint8_t *buf, size_t cap);
/* Forgets a partly received frame (after the link reopens); keeps the counters. */
void imucap_rx_reset(imucap_rx_t *rx);
/* Feeds one received byte. `*cmd` is meaningful after IMUCAP_RX_COMMAND, IMUCAP_RX_VERSION
 * and IMUCAP_RX_IGNORED (it may be overwritten after other results too). Never blocks; runs
 * in O(1) per byte except at a delimiter, where the frame is decoded in place. */
imucap_rx_event_t imucap_rx_push(imucap_rx_t *rx, uint8_t byte, imucap_cmd_t *cmd);
/* Damaged frames dropped so far: CRC, COBS, short, oversize and payload errors. */
uint32_t imucap_rx_bad_frames(const imucap_rx_t *rx);

/* ------------------------------------------------------------------ packet links (BLE, UDP) */

/* Links that carry packets instead of a byte stream (PROTOCOL.md sections 5 and 6) cut the same
 * frame stream in two ways; the Python references are firmware_bridge/transport.py's
 * notification_chunks() and pack_datagrams(), and imucap's tests compare both byte for byte.
 *
 *   Bluetooth LE: imucap_chunker_t cuts the stream into notification values of ATT_MTU - 3
 *   bytes. Frames share values and continue across them; a value is sent as soon as it is
 *   full, and the partly filled one when the firmware has nothing more waiting (flush).
 *
 *   UDP: imucap_packer_t packs WHOLE frames into datagrams of at most max_size bytes (1472);
 *   a frame is never split, and one longer than max_size travels alone.
 *
 * Both hand their output to an emit callback, synchronously, from inside write()/flush():
 *
 *     static bool send_value(void *ctx, const uint8_t *data, size_t len)
 *     {   // data is valid only during the call: copy it (into an mbuf, a socket, ...)
 *         return ble_notify(data, len) == 0;   // false: the value was lost (counted)
 *     }
 *     static uint8_t held[IMUCAP_BLE_MAX_VALUE];
 *     static imucap_chunker_t ch;
 *     imucap_chunker_init(&ch, held, sizeof held, 247, send_value, NULL);
 *     imucap_chunker_write(&ch, frame, n);   // every encoded frame, in sequence order
 *     imucap_chunker_flush(&ch);             // when no more frames are waiting
 *
 * Nothing is retried: a value or datagram the callback refuses is counted and dropped, which
 * the host sees as damaged frames and a gap in sequence numbers (PROTOCOL.md 5 and 6). The
 * structs are not thread-safe: call one from one task. Treat their fields as private except
 * the counters. */

/* Bytes of an ATT notification or write that are not its value. */
#define IMUCAP_BLE_ATT_HEADER 3u
/* ATT_MTU every link starts with, and the one the reference firmware offers. */
#define IMUCAP_BLE_DEFAULT_ATT_MTU 23u
#define IMUCAP_BLE_PREFERRED_ATT_MTU 247u
/* Longest attribute value ATT allows: an ATT_MTU above 515 carries no more in one value. */
#define IMUCAP_BLE_MAX_VALUE 512u
/* Frame-stream bytes one notification carries at `att_mtu` (>= 23). */
#define IMUCAP_BLE_VALUE_SIZE(att_mtu)                                        \
    ((att_mtu) - IMUCAP_BLE_ATT_HEADER > IMUCAP_BLE_MAX_VALUE ? IMUCAP_BLE_MAX_VALUE \
                                                              : (att_mtu) - IMUCAP_BLE_ATT_HEADER)

/* The imucap GATT UUIDs 9531000N-e026-4a0c-8a12-a68dcdc1c7ff as the 16 bytes of a 128-bit
 * UUID, least significant byte first: the order Bluetooth sends them in and NimBLE's
 * BLE_UUID128_INIT() takes (its arguments are these 16 bytes). `id` is one of the
 * IMUCAP_BLE_ID_* values. */
#define IMUCAP_BLE_UUID128_BYTES(id)                                                       \
    0xffu, 0xc7u, 0xc1u, 0xcdu, 0x8du, 0xa6u, 0x12u, 0x8au, 0x0cu, 0x4au, 0x26u, 0xe0u, (id), \
        0x00u, 0x31u, 0x95u
#define IMUCAP_BLE_ID_SERVICE 0x01u  /* 95310001-...: the imucap service */
#define IMUCAP_BLE_ID_FRAMES 0x02u   /* 95310002-...: frames, device -> host, notify */
#define IMUCAP_BLE_ID_COMMANDS 0x03u /* 95310003-...: commands, host -> device, write */
/* Bluetooth SIG 16-bit UUIDs of the Device Information service and its strings. */
#define IMUCAP_BLE_UUID16_DEVICE_INFORMATION 0x180Au
#define IMUCAP_BLE_UUID16_MANUFACTURER_NAME 0x2A29u
#define IMUCAP_BLE_UUID16_MODEL_NUMBER 0x2A24u
#define IMUCAP_BLE_UUID16_SERIAL_NUMBER 0x2A25u
#define IMUCAP_BLE_UUID16_FIRMWARE_REVISION 0x2A26u

/* UDP: the host's default port, the largest datagram (one Ethernet MTU without IP
 * fragmentation) unless a single frame is larger, how often a device without a host announces
 * itself, and how long without a command before it gives its host up. */
#define IMUCAP_UDP_DEFAULT_PORT 9000u
#define IMUCAP_UDP_MAX_DATAGRAM 1472u
#define IMUCAP_UDP_ANNOUNCE_MS 1000u
#define IMUCAP_UDP_HOST_TIMEOUT_MS 5000u

/* Writes `digits` (1..8) lowercase hex digits of `v`, most significant first, and a NUL into
 * out[0..digits]: the Device Information serial number is imucap_hex(out, device_id, 8). */
void imucap_hex(char *out, uint32_t v, unsigned digits);

/* Size of the buffer imucap_ble_default_name() fills: "imucap-" + 4 hex digits + NUL. */
#define IMUCAP_BLE_DEFAULT_NAME_SIZE 12u
/* The default advertised name of a board, "imucap-XXXX" with XXXX the low 16 bits of
 * `device_id` in lowercase hex (Python: transport.ble_name()). */
void imucap_ble_default_name(char *out, uint32_t device_id);

/* Where cut packets go: `data`/`len` is one notification value or one datagram, valid only
 * during the call. Return true when it was sent, false when it was dropped. */
typedef bool (*imucap_emit_fn)(void *ctx, const uint8_t *data, size_t len);

/* Notification chunker (Bluetooth LE). */
typedef struct {
    uint8_t *buf;  /* the value being filled */
    size_t cap;
    size_t size;   /* value size: IMUCAP_BLE_VALUE_SIZE(att_mtu) */
    size_t len;    /* bytes held in buf, always < size */
    imucap_emit_fn emit;
    void *ctx;
    uint32_t values_sent;    /* values the callback accepted */
    uint32_t values_dropped; /* values it refused */
} imucap_chunker_t;

/* Starts a chunker at `att_mtu` on buf[0..cap). Fails (false, chunker unusable) when att_mtu
 * is below 23, cap is smaller than the value size or emit is NULL. A buffer of
 * IMUCAP_BLE_MAX_VALUE bytes suits every ATT_MTU. */
bool imucap_chunker_init(imucap_chunker_t *c, uint8_t *buf, size_t cap, unsigned att_mtu,
                         imucap_emit_fn emit, void *ctx);
/* Changes the value size (after an MTU exchange). Held bytes stay at the front of the next
 * value; when they already fill one or more values of the new size, those are emitted now.
 * Fails (false, nothing changed) for an ATT_MTU below 23 or a value size over cap. */
bool imucap_chunker_set_mtu(imucap_chunker_t *c, unsigned att_mtu);
/* Appends `len` bytes of the frame stream (whole frames or any piece of them) and emits every
 * value that becomes full. Values that start on a value boundary of `data` are emitted
 * straight from `data`, without a copy. */
void imucap_chunker_write(imucap_chunker_t *c, const uint8_t *data, size_t len);
/* Emits the partly filled value, if any (call it when no more frames are waiting). */
void imucap_chunker_flush(imucap_chunker_t *c);
/* Forgets the held bytes without sending them (the connection closed); keeps the counters. */
void imucap_chunker_reset(imucap_chunker_t *c);
/* Bytes held for the next value. */
size_t imucap_chunker_pending(const imucap_chunker_t *c);

/* Datagram packer (UDP). */
typedef struct {
    uint8_t *buf;    /* the datagram being filled */
    size_t cap;
    size_t max_size; /* largest datagram, unless one frame alone is larger */
    size_t len;      /* bytes held in buf, always < max_size */
    imucap_emit_fn emit;
    void *ctx;
    uint32_t datagrams_sent;    /* datagrams the callback accepted */
    uint32_t datagrams_dropped; /* datagrams it refused */
    uint32_t bytes_discarded;   /* bytes after the last 0x00 of a write: not a whole frame */
} imucap_packer_t;

/* Starts a packer for datagrams of at most `max_size` bytes (IMUCAP_UDP_MAX_DATAGRAM) on
 * buf[0..cap). Fails (false) when cap is smaller than max_size, buf is NULL while max_size is
 * not 0, or emit is NULL. */
bool imucap_packer_init(imucap_packer_t *p, uint8_t *buf, size_t cap, size_t max_size,
                        imucap_emit_fn emit, void *ctx);
/* Appends whole frames: `data` holds one or more frames, each ending in its 0x00 delimiter
 * (what the imucap_encode_*() functions return). A frame that does not fit in the held
 * datagram sends it first; a datagram that is exactly full is sent at once; a frame longer
 * than max_size is sent alone, straight from `data`. Empty frames (extra 0x00 bytes) are
 * skipped and bytes after the last 0x00 are discarded and counted, as Python's
 * pack_datagrams() does with the stream it is given. */
void imucap_packer_write(imucap_packer_t *p, const uint8_t *data, size_t len);
/* Emits the partly filled datagram, if any (call it when no more frames are waiting). */
void imucap_packer_flush(imucap_packer_t *p);
/* Forgets the held frames without sending them; keeps the counters. */
void imucap_packer_reset(imucap_packer_t *p);
/* Bytes held for the next datagram. */
size_t imucap_packer_pending(const imucap_packer_t *p);

#ifdef __cplusplus
}
#endif

#endif /* IMUCAP_PROTO_H */
