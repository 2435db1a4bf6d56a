/*
 * Host test harness for the portable protocol code (imucap_proto.c).
 *
 * Built and driven by tests/test_firmware_c.py. It reads commands from stdin, one per line,
 * and writes exactly one line to stdout per command. Tokens are separated by single spaces;
 * integers are decimal; byte strings are lowercase hex, "-" meaning empty.
 *
 *   crc HEX                     -> 8 hex digits: imucap_crc32(HEX)
 *   cobs HEX                    -> ENCODED_HEX ok|bad      imucap_cobs_encode; "ok" when the
 *                                  encoding decodes back to HEX (in place), fits
 *                                  IMUCAP_COBS_MAX_ENCODED and overflows a buffer 1 byte short
 *   uncobs HEX                  -> ok DECODED_HEX | err    imucap_cobs_decode (in place)
 *   enc TYPE SEQ MAJOR MINOR EXTRA_HEX FIELDS...
 *                               -> FRAME_HEX | err REASON
 *        Encodes a frame with imucap_writer_*: the payload of TYPE from FIELDS, then EXTRA_HEX
 *        (bytes a later minor version appends; the whole payload of an unknown TYPE). For
 *        version 1.0 without extra bytes it also encodes with imucap_encode_<message>() and
 *        answers "err mismatch" if the two differ. It also checks that a buffer one byte too
 *        short gives 0 ("err capacity" otherwise).
 *   dec FRAME_HEX               -> ok TYPE SEQ MAJOR MINOR FIELDS...
 *                                | unknown TYPE SEQ MAJOR MINOR | err STATUS
 *        imucap_decode_frame (delimiter included or not) then the payload parser of TYPE.
 *   rx HEX                      -> events EVENT... ; ok=N bad=N crc=N cobs=N short=N
 *                                  oversize=N payload=N version=N unknown=N bytes=N
 *        Pushes the bytes one at a time through the persistent receiver (imucap_rx_push)
 *        and lists what they completed, then the receiver's counters (cumulative). EVENT is
 *        cmd:TYPE:SEQ:MAJOR:MINOR[:ARGS] (ARGS: SET_RATE rate:spf, PING nonce:host_time),
 *        bad, version:TYPE:SEQ:MAJOR:MINOR or ignored:TYPE:SEQ:MAJOR:MINOR.
 *   rxinit CAP                  -> ok       new receiver with a CAP-byte buffer, counters zero
 *   chunk MTU CAP TOKEN...      -> values EMIT... ; sent=N dropped=N pending=N | err REASON
 *        A Bluetooth LE notification chunker (imucap_chunker_*) at ATT_MTU MTU on a CAP-byte
 *        buffer (CAP <= 1024), fed token by token: HEX writes those bytes ("-" writes none),
 *        "." flushes, mN sets the ATT_MTU to N, "!" makes the next emit call refuse its value.
 *        EMIT is I:HEX for each value emitted, I being the 0-based index of the token during
 *        which it came out; a refused value is written I:HEX:x. "err init" when the chunker
 *        cannot start, "err mtu" when an mN fails (nothing else is printed then).
 *   pack MAX CAP TOKEN...       -> datagrams EMIT... ; sent=N dropped=N pending=N discarded=N
 *        The same for the UDP datagram packer (imucap_packer_*, datagrams of at most MAX
 *        bytes, CAP-byte buffer, CAP <= 8192): HEX is one imucap_packer_write, "." a flush,
 *        "!" refuses the next datagram.
 *   blename DEVICE_ID           -> NAME SERIAL   imucap_ble_default_name and imucap_hex(8)
 *   uuid ID                     -> 32 hex digits: IMUCAP_BLE_UUID128_BYTES(ID) in memory order
 *
 * FIELDS, the same for enc and dec, by TYPE:
 *   1 DEVICE_INFO  proto_major proto_minor device_id boot_id rate_hz samples_per_frame content
 *                  accel_range_g gyro_range_dps mag_range_ut streaming(0|1) CHIP_HEX
 *                  FIRMWARE_HEX sensor_count SITE_HEX...
 *   2 SAMPLES      t0_us dt_us content sensor_ok n_samples n_sensors VALUE... (sample-major)
 *   3 PONG         nonce host_time_us device_rx_us device_tx_us
 *   4 ACK          command_seq command_type status
 *   5 LOG          level TEXT_HEX
 *   0x81-0x83      (none)
 *   0x84 SET_RATE  rate_hz samples_per_frame
 *   0x85 PING      nonce host_time_us
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imucap_proto.h"

#define LINE_SIZE (1u << 18)
#define BIN_SIZE (1u << 16)
#define MAX_VALUES (255u * IMUCAP_MAX_SENSORS * 13u)

static char line[LINE_SIZE];
static uint8_t bin[BIN_SIZE];
static uint8_t extra[BIN_SIZE];
static uint8_t out[BIN_SIZE];
static uint8_t out2[BIN_SIZE];
static uint8_t strpool[BIN_SIZE];
static size_t strpool_used;
static int16_t values[MAX_VALUES];
static uint8_t rxbuf[BIN_SIZE];
static imucap_rx_t rx;

/* ------------------------------------------------------------------ parsing helpers */

static char *cursor;

static char *next_token(void)
{
    char *start;
    if (cursor == NULL) {
        return NULL;
    }
    while (*cursor == ' ') {
        cursor++;
    }
    if (*cursor == '\0') {
        return NULL;
    }
    start = cursor;
    while (*cursor != ' ' && *cursor != '\0') {
        cursor++;
    }
    if (*cursor == ' ') {
        *cursor++ = '\0';
    }
    return start;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int parse_hex(const char *tok, uint8_t *dst, size_t cap, size_t *len)
{
    size_t n, i;
    if (tok == NULL) {
        return 0;
    }
    if (strcmp(tok, "-") == 0) {
        *len = 0;
        return 1;
    }
    n = strlen(tok);
    if (n % 2u != 0u || n / 2u > cap) {
        return 0;
    }
    for (i = 0; i < n / 2u; i++) {
        int hi = hex_digit(tok[2u * i]);
        int lo = hex_digit(tok[2u * i + 1u]);
        if (hi < 0 || lo < 0) {
            return 0;
        }
        dst[i] = (uint8_t)(hi * 16 + lo);
    }
    *len = n / 2u;
    return 1;
}

static int parse_u64(const char *tok, unsigned long long max, unsigned long long *v)
{
    char *end;
    if (tok == NULL || *tok == '-') {
        return 0;
    }
    errno = 0;
    *v = strtoull(tok, &end, 10);
    return errno == 0 && *end == '\0' && end != tok && *v <= max;
}

static int parse_i16(const char *tok, int16_t *v)
{
    char *end;
    long x;
    if (tok == NULL) {
        return 0;
    }
    errno = 0;
    x = strtol(tok, &end, 10);
    if (errno != 0 || *end != '\0' || end == tok || x < -32768L || x > 32767L) {
        return 0;
    }
    *v = (int16_t)x;
    return 1;
}

#define U8(dst)                                                 \
    do {                                                        \
        unsigned long long t_;                                  \
        if (!parse_u64(next_token(), 0xFFull, &t_)) return 0;   \
        (dst) = (uint8_t)t_;                                    \
    } while (0)
#define U16(dst)                                                \
    do {                                                        \
        unsigned long long t_;                                  \
        if (!parse_u64(next_token(), 0xFFFFull, &t_)) return 0; \
        (dst) = (uint16_t)t_;                                   \
    } while (0)
#define U32(dst)                                                    \
    do {                                                            \
        unsigned long long t_;                                      \
        if (!parse_u64(next_token(), 0xFFFFFFFFull, &t_)) return 0; \
        (dst) = (uint32_t)t_;                                       \
    } while (0)
#define U64(dst)                                                         \
    do {                                                                 \
        unsigned long long t_;                                           \
        if (!parse_u64(next_token(), 0xFFFFFFFFFFFFFFFFull, &t_)) return 0; \
        (dst) = (uint64_t)t_;                                            \
    } while (0)

/* A hex token decoded into the string pool. */
static int parse_str(imucap_str_t *s)
{
    size_t n;
    if (!parse_hex(next_token(), strpool + strpool_used, sizeof strpool - strpool_used, &n)) {
        return 0;
    }
    s->ptr = (const char *)(strpool + strpool_used);
    s->len = n;
    strpool_used += n;
    return 1;
}

/* ------------------------------------------------------------------ output helpers */

static void print_hex(const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    if (n == 0u) {
        putchar('-');
        return;
    }
    for (i = 0; i < n; i++) {
        putchar(digits[p[i] >> 4]);
        putchar(digits[p[i] & 0x0Fu]);
    }
}

static void print_str(imucap_str_t s)
{
    print_hex((const uint8_t *)s.ptr, s.len);
}

/* ------------------------------------------------------------------ enc */

typedef struct {
    uint8_t type;
    uint16_t seq;
    uint8_t major;
    uint8_t minor;
    size_t extra_len;
    imucap_device_info_t info;
    imucap_samples_t samples;
    imucap_pong_t pong;
    imucap_ack_t ack;
    uint8_t log_level;
    imucap_str_t log_text;
    imucap_cmd_t cmd;
} enc_request_t;

static enc_request_t req;

static int parse_enc_fields(void)
{
    unsigned i;
    size_t count, k;
    strpool_used = 0;
    switch (req.type) {
    case IMUCAP_MSG_DEVICE_INFO:
        U8(req.info.proto_major);
        U8(req.info.proto_minor);
        U32(req.info.device_id);
        U32(req.info.boot_id);
        U16(req.info.rate_hz);
        U8(req.info.samples_per_frame);
        U8(req.info.content);
        U16(req.info.accel_range_g);
        U16(req.info.gyro_range_dps);
        U16(req.info.mag_range_ut);
        {
            uint8_t streaming;
            U8(streaming);
            req.info.streaming = streaming != 0u;
        }
        if (!parse_str(&req.info.chip) || !parse_str(&req.info.firmware)) {
            return 0;
        }
        U8(req.info.sensor_count);
        for (i = 0; i < req.info.sensor_count; i++) {
            if (i >= IMUCAP_MAX_SENSORS || !parse_str(&req.info.sites[i])) {
                return 0;
            }
        }
        return 1;
    case IMUCAP_MSG_SAMPLES:
        U64(req.samples.t0_us);
        U32(req.samples.dt_us);
        U8(req.samples.content);
        U16(req.samples.sensor_ok);
        U8(req.samples.n_samples);
        U8(req.samples.sensor_count);
        count = (size_t)req.samples.n_samples * req.samples.sensor_count *
                imucap_values_per_sensor(req.samples.content);
        if (count > MAX_VALUES) {
            return 0;
        }
        for (k = 0; k < count; k++) {
            if (!parse_i16(next_token(), &values[k])) {
                return 0;
            }
        }
        req.samples.values = values;
        req.samples.records = NULL;
        return 1;
    case IMUCAP_MSG_PONG:
        U32(req.pong.nonce);
        U64(req.pong.host_time_us);
        U64(req.pong.device_rx_us);
        U64(req.pong.device_tx_us);
        return 1;
    case IMUCAP_MSG_ACK:
        U16(req.ack.command_seq);
        U8(req.ack.command_type);
        U8(req.ack.status);
        return 1;
    case IMUCAP_MSG_LOG:
        U8(req.log_level);
        return parse_str(&req.log_text);
    case IMUCAP_MSG_GET_INFO:
    case IMUCAP_MSG_START:
    case IMUCAP_MSG_STOP:
        req.cmd.type = req.type;
        return 1;
    case IMUCAP_MSG_SET_RATE:
        req.cmd.type = req.type;
        U16(req.cmd.set_rate.rate_hz);
        U8(req.cmd.set_rate.samples_per_frame);
        return 1;
    case IMUCAP_MSG_PING:
        req.cmd.type = req.type;
        U32(req.cmd.ping.nonce);
        U64(req.cmd.ping.host_time_us);
        return 1;
    default:
        return 1; /* an unknown type: its payload is all in EXTRA_HEX */
    }
}

/* The generic path: imucap_writer_* with the version from the request, then extra bytes. */
static size_t encode_with_writer(uint8_t *dst, size_t cap)
{
    imucap_writer_t w;
    imucap_writer_begin(&w, dst, cap, IMUCAP_VERSION_BYTE(req.major, req.minor), req.type,
                        req.seq);
    switch (req.type) {
    case IMUCAP_MSG_DEVICE_INFO:
        imucap_put_device_info(&w, &req.info);
        break;
    case IMUCAP_MSG_SAMPLES:
        imucap_put_samples(&w, &req.samples);
        break;
    case IMUCAP_MSG_PONG:
        imucap_put_pong(&w, &req.pong);
        break;
    case IMUCAP_MSG_ACK:
        imucap_put_ack(&w, &req.ack);
        break;
    case IMUCAP_MSG_LOG:
        imucap_put_log(&w, req.log_level, req.log_text);
        break;
    case IMUCAP_MSG_GET_INFO:
    case IMUCAP_MSG_START:
    case IMUCAP_MSG_STOP:
    case IMUCAP_MSG_SET_RATE:
    case IMUCAP_MSG_PING:
        imucap_put_command(&w, &req.cmd);
        break;
    default:
        break;
    }
    imucap_writer_bytes(&w, extra, req.extra_len);
    return imucap_writer_end(&w);
}

/* The one-call encoders a firmware uses (version 1.0, no extra bytes). */
static size_t encode_direct(uint8_t *dst, size_t cap)
{
    switch (req.type) {
    case IMUCAP_MSG_DEVICE_INFO:
        return imucap_encode_device_info(dst, cap, req.seq, &req.info);
    case IMUCAP_MSG_SAMPLES:
        return imucap_encode_samples(dst, cap, req.seq, &req.samples);
    case IMUCAP_MSG_PONG:
        return imucap_encode_pong(dst, cap, req.seq, &req.pong);
    case IMUCAP_MSG_ACK:
        return imucap_encode_ack(dst, cap, req.seq, &req.ack);
    case IMUCAP_MSG_LOG:
        return imucap_encode_log(dst, cap, req.seq, req.log_level, req.log_text.ptr,
                                 req.log_text.len);
    default:
        return imucap_encode_command(dst, cap, req.seq, &req.cmd);
    }
}

static void cmd_enc(void)
{
    size_t n;
    unsigned long long t;
    memset(&req, 0, sizeof req);
    if (!parse_u64(next_token(), 0xFFull, &t)) {
        puts("err syntax");
        return;
    }
    req.type = (uint8_t)t;
    if (!parse_u64(next_token(), 0xFFFFull, &t)) {
        puts("err syntax");
        return;
    }
    req.seq = (uint16_t)t;
    if (!parse_u64(next_token(), 15ull, &t)) {
        puts("err syntax");
        return;
    }
    req.major = (uint8_t)t;
    if (!parse_u64(next_token(), 15ull, &t)) {
        puts("err syntax");
        return;
    }
    req.minor = (uint8_t)t;
    if (!parse_hex(next_token(), extra, sizeof extra, &req.extra_len) || !parse_enc_fields() ||
        next_token() != NULL) {
        puts("err syntax");
        return;
    }
    n = encode_with_writer(out, sizeof out);
    if (n == 0u) {
        puts("err encode");
        return;
    }
    if (encode_with_writer(out2, n - 1u) != 0u) {
        puts("err capacity");
        return;
    }
    if (req.major == IMUCAP_PROTO_MAJOR && req.minor == IMUCAP_PROTO_MINOR &&
        req.extra_len == 0u && req.type >= IMUCAP_MSG_DEVICE_INFO &&
        (req.type <= IMUCAP_MSG_LOG ||
         (req.type >= IMUCAP_MSG_GET_INFO && req.type <= IMUCAP_MSG_PING))) {
        if (encode_direct(out2, sizeof out2) != n || memcmp(out, out2, n) != 0 ||
            encode_direct(out2, n - 1u) != 0u) {
            puts("err mismatch");
            return;
        }
    }
    print_hex(out, n);
    putchar('\n');
}

/* ------------------------------------------------------------------ dec */

static void cmd_dec(void)
{
    size_t len;
    imucap_frame_t f;
    imucap_status_t st;
    if (!parse_hex(next_token(), bin, sizeof bin, &len) || next_token() != NULL) {
        puts("err syntax");
        return;
    }
    st = imucap_decode_frame(bin, len, &f);
    if (st != IMUCAP_OK) {
        printf("err %s\n", imucap_status_name(st));
        return;
    }
    switch (f.type) {
    case IMUCAP_MSG_DEVICE_INFO: {
        imucap_device_info_t m;
        unsigned i;
        st = imucap_parse_device_info(f.payload, f.payload_len, &m);
        if (st != IMUCAP_OK) {
            break;
        }
        printf("ok %u %u %u %u %u %u %lu %lu %u %u %u %u %u %u %u ", f.type, f.seq, f.major,
               f.minor, m.proto_major, m.proto_minor, (unsigned long)m.device_id,
               (unsigned long)m.boot_id, m.rate_hz, m.samples_per_frame, m.content,
               m.accel_range_g, m.gyro_range_dps, m.mag_range_ut, m.streaming ? 1u : 0u);
        print_str(m.chip);
        putchar(' ');
        print_str(m.firmware);
        printf(" %u", m.sensor_count);
        for (i = 0; i < m.sensor_count; i++) {
            putchar(' ');
            print_str(m.sites[i]);
        }
        putchar('\n');
        return;
    }
    case IMUCAP_MSG_SAMPLES: {
        imucap_samples_t m;
        size_t count, k;
        st = imucap_parse_samples(f.payload, f.payload_len, &m);
        if (st != IMUCAP_OK) {
            break;
        }
        printf("ok %u %u %u %u %llu %lu %u %u %u %u", f.type, f.seq, f.major, f.minor,
               (unsigned long long)m.t0_us, (unsigned long)m.dt_us, m.content, m.sensor_ok,
               m.n_samples, m.sensor_count);
        count = (size_t)m.n_samples * m.sensor_count * imucap_values_per_sensor(m.content);
        for (k = 0; k < count; k++) {
            printf(" %d", (int)imucap_samples_value(&m, k));
        }
        putchar('\n');
        return;
    }
    case IMUCAP_MSG_PONG: {
        imucap_pong_t m;
        st = imucap_parse_pong(f.payload, f.payload_len, &m);
        if (st != IMUCAP_OK) {
            break;
        }
        printf("ok %u %u %u %u %lu %llu %llu %llu\n", f.type, f.seq, f.major, f.minor,
               (unsigned long)m.nonce, (unsigned long long)m.host_time_us,
               (unsigned long long)m.device_rx_us, (unsigned long long)m.device_tx_us);
        return;
    }
    case IMUCAP_MSG_ACK: {
        imucap_ack_t m;
        st = imucap_parse_ack(f.payload, f.payload_len, &m);
        if (st != IMUCAP_OK) {
            break;
        }
        printf("ok %u %u %u %u %u %u %u\n", f.type, f.seq, f.major, f.minor, m.command_seq,
               m.command_type, m.status);
        return;
    }
    case IMUCAP_MSG_LOG: {
        imucap_log_t m;
        st = imucap_parse_log(f.payload, f.payload_len, &m);
        if (st != IMUCAP_OK) {
            break;
        }
        printf("ok %u %u %u %u %u ", f.type, f.seq, f.major, f.minor, m.level);
        print_str(m.text);
        putchar('\n');
        return;
    }
    default: {
        imucap_cmd_t c;
        st = imucap_parse_command(&f, &c);
        if (st == IMUCAP_ERR_TYPE) {
            printf("unknown %u %u %u %u\n", f.type, f.seq, f.major, f.minor);
            return;
        }
        if (st != IMUCAP_OK) {
            break;
        }
        printf("ok %u %u %u %u", c.type, c.seq, c.major, c.minor);
        if (c.type == IMUCAP_MSG_SET_RATE) {
            printf(" %u %u", c.set_rate.rate_hz, c.set_rate.samples_per_frame);
        } else if (c.type == IMUCAP_MSG_PING) {
            printf(" %lu %llu", (unsigned long)c.ping.nonce,
                   (unsigned long long)c.ping.host_time_us);
        }
        putchar('\n');
        return;
    }
    }
    printf("err %s\n", imucap_status_name(st));
}

/* ------------------------------------------------------------------ rx */

static void print_header_event(const char *what, const imucap_cmd_t *c)
{
    printf(" %s:%u:%u:%u:%u", what, c->type, c->seq, c->major, c->minor);
}

static void cmd_rx(void)
{
    size_t len, i;
    const imucap_rx_counters_t *k = &rx.counters;
    if (!parse_hex(next_token(), bin, sizeof bin, &len) || next_token() != NULL) {
        puts("err syntax");
        return;
    }
    printf("events");
    for (i = 0; i < len; i++) {
        imucap_cmd_t c;
        switch (imucap_rx_push(&rx, bin[i], &c)) {
        case IMUCAP_RX_NONE:
            break;
        case IMUCAP_RX_COMMAND:
            print_header_event("cmd", &c);
            if (c.type == IMUCAP_MSG_SET_RATE) {
                printf(":%u:%u", c.set_rate.rate_hz, c.set_rate.samples_per_frame);
            } else if (c.type == IMUCAP_MSG_PING) {
                printf(":%lu:%llu", (unsigned long)c.ping.nonce,
                       (unsigned long long)c.ping.host_time_us);
            }
            break;
        case IMUCAP_RX_BAD:
            printf(" bad");
            break;
        case IMUCAP_RX_VERSION:
            print_header_event("version", &c);
            break;
        case IMUCAP_RX_IGNORED:
            print_header_event("ignored", &c);
            break;
        }
    }
    printf(" ; ok=%lu bad=%lu crc=%lu cobs=%lu short=%lu oversize=%lu payload=%lu version=%lu "
           "unknown=%lu bytes=%lu\n",
           (unsigned long)k->frames_ok, (unsigned long)imucap_rx_bad_frames(&rx),
           (unsigned long)k->crc_errors, (unsigned long)k->cobs_errors,
           (unsigned long)k->short_frames, (unsigned long)k->oversize_frames,
           (unsigned long)k->payload_errors, (unsigned long)k->version_errors,
           (unsigned long)k->unknown_types, (unsigned long)k->bytes_in);
}

static void cmd_rxinit(void)
{
    unsigned long long cap;
    if (!parse_u64(next_token(), sizeof rxbuf, &cap) || next_token() != NULL) {
        puts("err syntax");
        return;
    }
    imucap_rx_init(&rx, rxbuf, (size_t)cap);
    puts("ok");
}

/* ------------------------------------------------------------------ chunk, pack */

#define MAX_TOKENS 4096u

static char *tokens[MAX_TOKENS];
static size_t token_count;
static size_t current_token;
static int refuse_next;

/* Reads the remaining tokens of the line and checks them: HEX, "-", ".", "!" or (when
 * allow_mtu) mN. Returns 0 on a syntax error. */
static int collect_tokens(int allow_mtu)
{
    char *tok;
    token_count = 0;
    while ((tok = next_token()) != NULL) {
        size_t n;
        if (token_count >= MAX_TOKENS) {
            return 0;
        }
        if (strcmp(tok, ".") != 0 && strcmp(tok, "!") != 0) {
            if (tok[0] == 'm') {
                unsigned long long v;
                if (!allow_mtu || !parse_u64(tok + 1, 0xFFFFull, &v)) {
                    return 0;
                }
            } else if (!parse_hex(tok, bin, sizeof bin, &n)) {
                return 0;
            }
        }
        tokens[token_count++] = tok;
    }
    return 1;
}

static bool emit_print(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    printf(" %lu:", (unsigned long)current_token);
    print_hex(data, len);
    if (refuse_next) {
        refuse_next = 0;
        fputs(":x", stdout);
        return false;
    }
    return true;
}

static void cmd_chunk(void)
{
    static uint8_t held[1024];
    unsigned long long mtu, cap;
    imucap_chunker_t c;
    size_t i, len;
    if (!parse_u64(next_token(), 0xFFFFull, &mtu) ||
        !parse_u64(next_token(), sizeof held, &cap) || !collect_tokens(1)) {
        puts("err syntax");
        return;
    }
    if (!imucap_chunker_init(&c, held, (size_t)cap, (unsigned)mtu, emit_print, NULL)) {
        puts("err init");
        return;
    }
    /* Dry run of the MTU changes on a copy, so that an error prints nothing else. */
    {
        imucap_chunker_t probe = c;
        for (i = 0; i < token_count; i++) {
            unsigned long long v;
            if (tokens[i][0] == 'm') {
                (void)parse_u64(tokens[i] + 1, 0xFFFFull, &v);
                probe.len = 0;
                if (!imucap_chunker_set_mtu(&probe, (unsigned)v)) {
                    puts("err mtu");
                    return;
                }
            }
        }
    }
    refuse_next = 0;
    printf("values");
    for (i = 0; i < token_count; i++) {
        const char *tok = tokens[i];
        current_token = i;
        if (strcmp(tok, ".") == 0) {
            imucap_chunker_flush(&c);
        } else if (strcmp(tok, "!") == 0) {
            refuse_next = 1;
        } else if (tok[0] == 'm') {
            unsigned long long v;
            (void)parse_u64(tok + 1, 0xFFFFull, &v);
            (void)imucap_chunker_set_mtu(&c, (unsigned)v);
        } else {
            (void)parse_hex(tok, bin, sizeof bin, &len);
            imucap_chunker_write(&c, bin, len);
        }
    }
    printf(" ; sent=%lu dropped=%lu pending=%lu\n", (unsigned long)c.values_sent,
           (unsigned long)c.values_dropped, (unsigned long)imucap_chunker_pending(&c));
}

static void cmd_pack(void)
{
    static uint8_t held[8192];
    unsigned long long max_size, cap;
    imucap_packer_t p;
    size_t i, len;
    if (!parse_u64(next_token(), 0xFFFFFFFFull, &max_size) ||
        !parse_u64(next_token(), sizeof held, &cap) || !collect_tokens(0)) {
        puts("err syntax");
        return;
    }
    if (!imucap_packer_init(&p, held, (size_t)cap, (size_t)max_size, emit_print, NULL)) {
        puts("err init");
        return;
    }
    refuse_next = 0;
    printf("datagrams");
    for (i = 0; i < token_count; i++) {
        const char *tok = tokens[i];
        current_token = i;
        if (strcmp(tok, ".") == 0) {
            imucap_packer_flush(&p);
        } else if (strcmp(tok, "!") == 0) {
            refuse_next = 1;
        } else {
            (void)parse_hex(tok, bin, sizeof bin, &len);
            imucap_packer_write(&p, bin, len);
        }
    }
    printf(" ; sent=%lu dropped=%lu pending=%lu discarded=%lu\n",
           (unsigned long)p.datagrams_sent, (unsigned long)p.datagrams_dropped,
           (unsigned long)imucap_packer_pending(&p), (unsigned long)p.bytes_discarded);
}

static void cmd_blename(void)
{
    unsigned long long id;
    char name[IMUCAP_BLE_DEFAULT_NAME_SIZE];
    char serial[9];
    if (!parse_u64(next_token(), 0xFFFFFFFFull, &id) || next_token() != NULL) {
        puts("err syntax");
        return;
    }
    imucap_ble_default_name(name, (uint32_t)id);
    imucap_hex(serial, (uint32_t)id, 8u);
    printf("%s %s\n", name, serial);
}

static void cmd_uuid(void)
{
    unsigned long long id;
    uint8_t u[16];
    if (!parse_u64(next_token(), 0xFFull, &id) || next_token() != NULL) {
        puts("err syntax");
        return;
    }
    {
        const uint8_t bytes[16] = {IMUCAP_BLE_UUID128_BYTES((uint8_t)id)};
        memcpy(u, bytes, sizeof u);
    }
    print_hex(u, sizeof u);
    putchar('\n');
}

/* ------------------------------------------------------------------ crc, cobs */

static void cmd_crc(void)
{
    size_t len;
    if (!parse_hex(next_token(), bin, sizeof bin, &len) || next_token() != NULL) {
        puts("err syntax");
        return;
    }
    printf("%08lx\n", (unsigned long)imucap_crc32(bin, len));
}

static void cmd_cobs(void)
{
    size_t len, n, back;
    int ok;
    if (!parse_hex(next_token(), bin, sizeof bin / 2u, &len) || next_token() != NULL) {
        puts("err syntax");
        return;
    }
    n = imucap_cobs_encode(bin, len, out, IMUCAP_COBS_MAX_ENCODED(len));
    if (n == 0u) {
        puts("err encode");
        return;
    }
    ok = memchr(out, 0, n) == NULL && imucap_cobs_encode(bin, len, out2, n - 1u) == 0u;
    memcpy(out2, out, n);
    ok = ok && imucap_cobs_decode(out2, n, out2, n, &back) && back == len &&
         memcmp(out2, bin, len) == 0;
    print_hex(out, n);
    puts(ok ? " ok" : " bad");
}

static void cmd_uncobs(void)
{
    size_t len, n;
    if (!parse_hex(next_token(), bin, sizeof bin, &len) || next_token() != NULL) {
        puts("err syntax");
        return;
    }
    if (!imucap_cobs_decode(bin, len, bin, len, &n)) {
        puts("err");
        return;
    }
    printf("ok ");
    print_hex(bin, n);
    putchar('\n');
}

/* ------------------------------------------------------------------ main loop */

int main(void)
{
    imucap_rx_init(&rx, rxbuf, IMUCAP_MAX_ENCODED);
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *cmd;
        size_t n = strlen(line);
        while (n > 0u && (line[n - 1u] == '\n' || line[n - 1u] == '\r')) {
            line[--n] = '\0';
        }
        cursor = line;
        cmd = next_token();
        if (cmd == NULL) {
            puts("err empty");
        } else if (strcmp(cmd, "crc") == 0) {
            cmd_crc();
        } else if (strcmp(cmd, "cobs") == 0) {
            cmd_cobs();
        } else if (strcmp(cmd, "uncobs") == 0) {
            cmd_uncobs();
        } else if (strcmp(cmd, "enc") == 0) {
            cmd_enc();
        } else if (strcmp(cmd, "dec") == 0) {
            cmd_dec();
        } else if (strcmp(cmd, "rx") == 0) {
            cmd_rx();
        } else if (strcmp(cmd, "rxinit") == 0) {
            cmd_rxinit();
        } else if (strcmp(cmd, "chunk") == 0) {
            cmd_chunk();
        } else if (strcmp(cmd, "pack") == 0) {
            cmd_pack();
        } else if (strcmp(cmd, "blename") == 0) {
            cmd_blename();
        } else if (strcmp(cmd, "uuid") == 0) {
            cmd_uuid();
        } else {
            puts("err command");
        }
    }
    return 0;
}
