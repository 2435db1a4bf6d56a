/*
 * imucap wire protocol v1: portable C reference implementation (see imucap_proto.h).
 */
#include "imucap_proto.h"

#include <string.h>

/* ------------------------------------------------------------------ little-endian helpers */

void imucap_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

void imucap_put_le32(uint8_t *p, uint32_t v)
{
    unsigned i;
    for (i = 0; i < 4u; i++) {
        p[i] = (uint8_t)((v >> (8u * i)) & 0xFFu);
    }
}

void imucap_put_le64(uint8_t *p, uint64_t v)
{
    unsigned i;
    for (i = 0; i < 8u; i++) {
        p[i] = (uint8_t)((v >> (8u * i)) & 0xFFu);
    }
}

uint16_t imucap_get_le16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] | ((unsigned)p[1] << 8));
}

uint32_t imucap_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

uint64_t imucap_get_le64(const uint8_t *p)
{
    return (uint64_t)imucap_get_le32(p) | ((uint64_t)imucap_get_le32(p + 4) << 32);
}

int16_t imucap_get_le_i16(const uint8_t *p)
{
    uint16_t u = imucap_get_le16(p);
    /* Two's complement without relying on implementation-defined narrowing. */
    return u < 0x8000u ? (int16_t)u : (int16_t)((int32_t)u - 65536);
}

imucap_str_t imucap_cstr(const char *s)
{
    imucap_str_t out;
    out.ptr = s;
    out.len = s != NULL ? strlen(s) : 0u;
    return out;
}

unsigned imucap_values_per_sensor(uint8_t content)
{
    unsigned n = 0;
    if (content & IMUCAP_CONTENT_ACCEL) {
        n += 3u;
    }
    if (content & IMUCAP_CONTENT_GYRO) {
        n += 3u;
    }
    if (content & IMUCAP_CONTENT_MAG) {
        n += 3u;
    }
    if (content & IMUCAP_CONTENT_QUAT) {
        n += 4u;
    }
    return n;
}

const char *imucap_status_name(imucap_status_t status)
{
    switch (status) {
    case IMUCAP_OK:
        return "ok";
    case IMUCAP_ERR_COBS:
        return "cobs";
    case IMUCAP_ERR_SHORT:
        return "short";
    case IMUCAP_ERR_OVERSIZE:
        return "oversize";
    case IMUCAP_ERR_CRC:
        return "crc";
    case IMUCAP_ERR_VERSION:
        return "version";
    case IMUCAP_ERR_PAYLOAD:
        return "payload";
    case IMUCAP_ERR_TYPE:
        return "type";
    }
    return "unknown";
}

/* ------------------------------------------------------------------ CRC-32 */

/* Reflected polynomial 0xEDB88320, four bits at a time: 64 bytes of table. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

/* One byte into the (not finalised) CRC register. */
static uint32_t crc_step(uint32_t reg, uint8_t byte)
{
    reg = (reg >> 4) ^ crc_nibble[(reg ^ byte) & 0x0Fu];
    reg = (reg >> 4) ^ crc_nibble[(reg ^ ((unsigned)byte >> 4)) & 0x0Fu];
    return reg;
}

uint32_t imucap_crc32_update(uint32_t crc, const uint8_t *data, size_t len)
{
    uint32_t reg = ~crc;
    size_t i;
    for (i = 0; i < len; i++) {
        reg = crc_step(reg, data[i]);
    }
    return ~reg;
}

uint32_t imucap_crc32(const uint8_t *data, size_t len)
{
    return imucap_crc32_update(0u, data, len);
}

/* ------------------------------------------------------------------ COBS (streaming) */

/* The writer's COBS state machine: `code_pos` is the slot reserved for the code byte of the
 * open block and `code` is 1 + the data bytes it holds. A block that reaches 254 data bytes
 * (code 0xFF) is closed only when another byte arrives, so data that ends exactly after a
 * full block gets no empty block after it (the canonical form). */

static bool cobs_open_block(imucap_writer_t *w)
{
    if (w->pos >= w->cap) {
        w->failed = true;
        return false;
    }
    w->code_pos = w->pos++;
    w->code = 1u;
    return true;
}

static void cobs_start(imucap_writer_t *w, uint8_t *out, size_t cap)
{
    w->out = out;
    w->cap = out != NULL ? cap : 0u;
    w->pos = 0;
    w->code_pos = 0;
    w->code = 1u;
    w->crc = 0xFFFFFFFFu;
    w->body_len = 0;
    w->failed = false;
    (void)cobs_open_block(w);
}

static void cobs_byte(imucap_writer_t *w, uint8_t b)
{
    if (w->failed) {
        return;
    }
    if (w->code == 0xFFu) {
        w->out[w->code_pos] = 0xFFu;
        if (!cobs_open_block(w)) {
            return;
        }
    }
    if (b == 0u) {
        w->out[w->code_pos] = w->code;
        (void)cobs_open_block(w);
    } else if (w->pos >= w->cap) {
        w->failed = true;
    } else {
        w->out[w->pos++] = b;
        w->code++;
    }
}

/* Writes the open block's code byte; returns the encoded length or 0. */
static size_t cobs_finish(imucap_writer_t *w)
{
    if (w->failed) {
        return 0;
    }
    w->out[w->code_pos] = w->code;
    return w->pos;
}

size_t imucap_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    imucap_writer_t w;
    size_t i;
    cobs_start(&w, dst, cap);
    for (i = 0; i < len && !w.failed; i++) {
        cobs_byte(&w, src[i]);
    }
    return cobs_finish(&w);
}

bool imucap_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                        size_t *out_len)
{
    size_t i = 0;
    size_t o = 0;
    bool zero_pending = false;
    if (len == 0) {
        return false;
    }
    /* In place (dst == src) is safe: the output index never passes the input index. */
    while (i < len) {
        uint8_t code = src[i];
        size_t n;
        if (code == 0u || (size_t)code > len - i) {
            return false;
        }
        if (zero_pending) {
            if (o >= cap) {
                return false;
            }
            dst[o++] = 0u;
        }
        n = (size_t)code - 1u;
        if (n > cap - o) {
            return false;
        }
        memmove(dst + o, src + i + 1, n);
        o += n;
        /* A full block (0xFF) carries no implied zero after it. */
        zero_pending = code != 0xFFu;
        i += code;
    }
    *out_len = o;
    return true;
}

/* ------------------------------------------------------------------ frame writer */

void imucap_writer_begin(imucap_writer_t *w, uint8_t *out, size_t cap, uint8_t version,
                         uint8_t type, uint16_t seq)
{
    cobs_start(w, out, cap);
    imucap_writer_u8(w, version);
    imucap_writer_u8(w, type);
    imucap_writer_u16(w, seq);
}

void imucap_writer_bytes(imucap_writer_t *w, const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        if (w->failed) {
            return;
        }
        if (w->body_len >= IMUCAP_MAX_BODY - IMUCAP_CRC_SIZE) {
            w->failed = true; /* the body would exceed IMUCAP_MAX_BODY */
            return;
        }
        w->crc = crc_step(w->crc, data[i]);
        w->body_len++;
        cobs_byte(w, data[i]);
    }
}

void imucap_writer_u8(imucap_writer_t *w, uint8_t v)
{
    imucap_writer_bytes(w, &v, 1u);
}

void imucap_writer_u16(imucap_writer_t *w, uint16_t v)
{
    uint8_t b[2];
    imucap_put_le16(b, v);
    imucap_writer_bytes(w, b, sizeof b);
}

void imucap_writer_u32(imucap_writer_t *w, uint32_t v)
{
    uint8_t b[4];
    imucap_put_le32(b, v);
    imucap_writer_bytes(w, b, sizeof b);
}

void imucap_writer_u64(imucap_writer_t *w, uint64_t v)
{
    uint8_t b[8];
    imucap_put_le64(b, v);
    imucap_writer_bytes(w, b, sizeof b);
}

void imucap_writer_i16(imucap_writer_t *w, int16_t v)
{
    /* Two's complement bit pattern, computed without implementation-defined conversions. */
    uint16_t u = v < 0 ? (uint16_t)(65536 + (int32_t)v) : (uint16_t)v;
    imucap_writer_u16(w, u);
}

void imucap_writer_str(imucap_writer_t *w, imucap_str_t s)
{
    size_t n = s.len;
    if (n > IMUCAP_MAX_NAME || (n > 0u && s.ptr == NULL)) {
        imucap_writer_fail(w);
        return;
    }
    imucap_writer_u8(w, (uint8_t)n);
    imucap_writer_bytes(w, (const uint8_t *)s.ptr, n);
}

void imucap_writer_fail(imucap_writer_t *w)
{
    w->failed = true;
}

size_t imucap_writer_end(imucap_writer_t *w)
{
    uint8_t crc[4];
    size_t i;
    if (w->failed) {
        return 0;
    }
    imucap_put_le32(crc, ~w->crc);
    for (i = 0; i < sizeof crc; i++) {
        cobs_byte(w, crc[i]);
    }
    if (cobs_finish(w) == 0u) {
        return 0;
    }
    if (w->pos >= w->cap) {
        w->failed = true;
        return 0;
    }
    w->out[w->pos++] = 0u; /* delimiter */
    return w->pos;
}

/* ------------------------------------------------------------------ payload writers */

void imucap_put_device_info(imucap_writer_t *w, const imucap_device_info_t *m)
{
    unsigned i;
    if (m->sensor_count < 1u || m->sensor_count > IMUCAP_MAX_SENSORS) {
        imucap_writer_fail(w);
        return;
    }
    imucap_writer_u8(w, m->proto_major);
    imucap_writer_u8(w, m->proto_minor);
    imucap_writer_u32(w, m->device_id);
    imucap_writer_u32(w, m->boot_id);
    imucap_writer_u16(w, m->rate_hz);
    imucap_writer_u8(w, m->samples_per_frame);
    imucap_writer_u8(w, m->sensor_count);
    imucap_writer_u8(w, m->content);
    imucap_writer_u16(w, m->accel_range_g);
    imucap_writer_u16(w, m->gyro_range_dps);
    imucap_writer_u16(w, m->mag_range_ut);
    imucap_writer_u8(w, m->streaming ? 1u : 0u);
    imucap_writer_str(w, m->chip);
    imucap_writer_str(w, m->firmware);
    for (i = 0; i < m->sensor_count; i++) {
        imucap_writer_str(w, m->sites[i]);
    }
}

void imucap_put_samples(imucap_writer_t *w, const imucap_samples_t *m)
{
    unsigned vps = imucap_values_per_sensor(m->content);
    size_t count = (size_t)m->n_samples * m->sensor_count * vps;
    size_t i;
    if (m->n_samples == 0u || m->sensor_count < 1u || m->sensor_count > IMUCAP_MAX_SENSORS ||
        vps == 0u || (m->values == NULL && m->records == NULL)) {
        imucap_writer_fail(w);
        return;
    }
    imucap_writer_u64(w, m->t0_us);
    imucap_writer_u32(w, m->dt_us);
    imucap_writer_u8(w, m->n_samples);
    imucap_writer_u8(w, m->sensor_count);
    imucap_writer_u8(w, m->content);
    imucap_writer_u8(w, 0u); /* reserved */
    imucap_writer_u16(w, m->sensor_ok);
    if (m->values != NULL) {
        for (i = 0; i < count && !w->failed; i++) {
            imucap_writer_i16(w, m->values[i]);
        }
    } else {
        imucap_writer_bytes(w, m->records, 2u * count);
    }
}

void imucap_put_pong(imucap_writer_t *w, const imucap_pong_t *m)
{
    imucap_writer_u32(w, m->nonce);
    imucap_writer_u64(w, m->host_time_us);
    imucap_writer_u64(w, m->device_rx_us);
    imucap_writer_u64(w, m->device_tx_us);
}

void imucap_put_ack(imucap_writer_t *w, const imucap_ack_t *m)
{
    imucap_writer_u16(w, m->command_seq);
    imucap_writer_u8(w, m->command_type);
    imucap_writer_u8(w, m->status);
}

void imucap_put_log(imucap_writer_t *w, uint8_t level, imucap_str_t text)
{
    if (text.len > 0u && text.ptr == NULL) {
        imucap_writer_fail(w);
        return;
    }
    imucap_writer_u8(w, level);
    imucap_writer_bytes(w, (const uint8_t *)text.ptr, text.len);
}

void imucap_put_command(imucap_writer_t *w, const imucap_cmd_t *cmd)
{
    switch (cmd->type) {
    case IMUCAP_MSG_GET_INFO:
    case IMUCAP_MSG_START:
    case IMUCAP_MSG_STOP:
        break;
    case IMUCAP_MSG_SET_RATE:
        imucap_writer_u16(w, cmd->set_rate.rate_hz);
        imucap_writer_u8(w, cmd->set_rate.samples_per_frame);
        break;
    case IMUCAP_MSG_PING:
        imucap_writer_u32(w, cmd->ping.nonce);
        imucap_writer_u64(w, cmd->ping.host_time_us);
        break;
    default:
        imucap_writer_fail(w);
        break;
    }
}

/* ------------------------------------------------------------------ frame encoders */

size_t imucap_encode_device_info(uint8_t *out, size_t cap, uint16_t seq,
                                 const imucap_device_info_t *m)
{
    imucap_writer_t w;
    imucap_writer_begin(&w, out, cap, IMUCAP_VERSION, IMUCAP_MSG_DEVICE_INFO, seq);
    imucap_put_device_info(&w, m);
    return imucap_writer_end(&w);
}

size_t imucap_encode_samples(uint8_t *out, size_t cap, uint16_t seq, const imucap_samples_t *m)
{
    imucap_writer_t w;
    imucap_writer_begin(&w, out, cap, IMUCAP_VERSION, IMUCAP_MSG_SAMPLES, seq);
    imucap_put_samples(&w, m);
    return imucap_writer_end(&w);
}

size_t imucap_encode_pong(uint8_t *out, size_t cap, uint16_t seq, const imucap_pong_t *m)
{
    imucap_writer_t w;
    imucap_writer_begin(&w, out, cap, IMUCAP_VERSION, IMUCAP_MSG_PONG, seq);
    imucap_put_pong(&w, m);
    return imucap_writer_end(&w);
}

size_t imucap_encode_ack(uint8_t *out, size_t cap, uint16_t seq, const imucap_ack_t *m)
{
    imucap_writer_t w;
    imucap_writer_begin(&w, out, cap, IMUCAP_VERSION, IMUCAP_MSG_ACK, seq);
    imucap_put_ack(&w, m);
    return imucap_writer_end(&w);
}

size_t imucap_encode_log(uint8_t *out, size_t cap, uint16_t seq, uint8_t level, const char *text,
                         size_t len)
{
    imucap_writer_t w;
    imucap_str_t s;
    s.ptr = text;
    s.len = len;
    imucap_writer_begin(&w, out, cap, IMUCAP_VERSION, IMUCAP_MSG_LOG, seq);
    imucap_put_log(&w, level, s);
    return imucap_writer_end(&w);
}

size_t imucap_encode_command(uint8_t *out, size_t cap, uint16_t seq, const imucap_cmd_t *cmd)
{
    imucap_writer_t w;
    imucap_writer_begin(&w, out, cap, IMUCAP_VERSION, cmd->type, seq);
    imucap_put_command(&w, cmd);
    return imucap_writer_end(&w);
}

/* ------------------------------------------------------------------ decoding */

imucap_status_t imucap_decode_body(const uint8_t *body, size_t len, imucap_frame_t *f)
{
    uint32_t crc;
    if (len < IMUCAP_MIN_BODY) {
        return IMUCAP_ERR_SHORT;
    }
    if (len > IMUCAP_MAX_BODY) {
        return IMUCAP_ERR_OVERSIZE;
    }
    crc = imucap_crc32(body, len - IMUCAP_CRC_SIZE);
    if (crc != imucap_get_le32(body + len - IMUCAP_CRC_SIZE)) {
        return IMUCAP_ERR_CRC;
    }
    f->version = body[0];
    f->major = (uint8_t)(body[0] >> 4);
    f->minor = (uint8_t)(body[0] & 0x0Fu);
    f->type = body[1];
    f->seq = imucap_get_le16(body + 2);
    f->payload = body + IMUCAP_HEADER_SIZE;
    f->payload_len = len - IMUCAP_MIN_BODY;
    /* Same major: accepted whatever the minor (a minor version only appends). */
    if (f->major != IMUCAP_PROTO_MAJOR) {
        return IMUCAP_ERR_VERSION;
    }
    return IMUCAP_OK;
}

imucap_status_t imucap_decode_frame(uint8_t *buf, size_t len, imucap_frame_t *f)
{
    size_t body_len;
    if (len > 0u && buf[len - 1u] == 0u) {
        len--; /* the delimiter */
    }
    if (len == 0u) {
        return IMUCAP_ERR_SHORT;
    }
    if (len > IMUCAP_MAX_ENCODED) {
        return IMUCAP_ERR_OVERSIZE;
    }
    if (!imucap_cobs_decode(buf, len, buf, len, &body_len)) {
        return IMUCAP_ERR_COBS;
    }
    return imucap_decode_body(buf, body_len, f);
}

/* Reads a u8-length string at *off; false when it runs past the end. */
static bool parse_str(const uint8_t *p, size_t len, size_t *off, imucap_str_t *s)
{
    size_t n;
    if (*off >= len) {
        return false;
    }
    n = p[*off];
    if (n > len - *off - 1u) {
        return false;
    }
    s->ptr = (const char *)(p + *off + 1u);
    s->len = n;
    *off += 1u + n;
    return true;
}

imucap_status_t imucap_parse_device_info(const uint8_t *p, size_t len, imucap_device_info_t *m)
{
    size_t off = IMUCAP_DEVICE_INFO_FIXED;
    unsigned i;
    if (len < IMUCAP_DEVICE_INFO_FIXED) {
        return IMUCAP_ERR_PAYLOAD;
    }
    memset(m, 0, sizeof *m);
    m->proto_major = p[0];
    m->proto_minor = p[1];
    m->device_id = imucap_get_le32(p + 2);
    m->boot_id = imucap_get_le32(p + 6);
    m->rate_hz = imucap_get_le16(p + 10);
    m->samples_per_frame = p[12];
    m->sensor_count = p[13];
    m->content = p[14];
    m->accel_range_g = imucap_get_le16(p + 15);
    m->gyro_range_dps = imucap_get_le16(p + 17);
    m->mag_range_ut = imucap_get_le16(p + 19);
    m->streaming = p[21] != 0u;
    if (m->sensor_count < 1u || m->sensor_count > IMUCAP_MAX_SENSORS) {
        return IMUCAP_ERR_PAYLOAD;
    }
    if (!parse_str(p, len, &off, &m->chip) || !parse_str(p, len, &off, &m->firmware)) {
        return IMUCAP_ERR_PAYLOAD;
    }
    for (i = 0; i < m->sensor_count; i++) {
        if (!parse_str(p, len, &off, &m->sites[i])) {
            return IMUCAP_ERR_PAYLOAD;
        }
    }
    return IMUCAP_OK;
}

imucap_status_t imucap_parse_samples(const uint8_t *p, size_t len, imucap_samples_t *m)
{
    unsigned vps;
    size_t count;
    if (len < IMUCAP_SAMPLES_HEADER) {
        return IMUCAP_ERR_PAYLOAD;
    }
    m->t0_us = imucap_get_le64(p);
    m->dt_us = imucap_get_le32(p + 8);
    m->n_samples = p[12];
    m->sensor_count = p[13];
    m->content = p[14];
    /* p[15] is reserved. */
    m->sensor_ok = imucap_get_le16(p + 16);
    m->values = NULL;
    m->records = p + IMUCAP_SAMPLES_HEADER;
    vps = imucap_values_per_sensor(m->content);
    if (m->n_samples == 0u || m->sensor_count < 1u || m->sensor_count > IMUCAP_MAX_SENSORS ||
        vps == 0u) {
        return IMUCAP_ERR_PAYLOAD;
    }
    count = (size_t)m->n_samples * m->sensor_count * vps;
    if (2u * count > len - IMUCAP_SAMPLES_HEADER) {
        return IMUCAP_ERR_PAYLOAD;
    }
    return IMUCAP_OK;
}

imucap_status_t imucap_parse_pong(const uint8_t *p, size_t len, imucap_pong_t *m)
{
    if (len < IMUCAP_PONG_SIZE) {
        return IMUCAP_ERR_PAYLOAD;
    }
    m->nonce = imucap_get_le32(p);
    m->host_time_us = imucap_get_le64(p + 4);
    m->device_rx_us = imucap_get_le64(p + 12);
    m->device_tx_us = imucap_get_le64(p + 20);
    return IMUCAP_OK;
}

imucap_status_t imucap_parse_ack(const uint8_t *p, size_t len, imucap_ack_t *m)
{
    if (len < IMUCAP_ACK_SIZE) {
        return IMUCAP_ERR_PAYLOAD;
    }
    m->command_seq = imucap_get_le16(p);
    m->command_type = p[2];
    m->status = p[3];
    return IMUCAP_OK;
}

imucap_status_t imucap_parse_log(const uint8_t *p, size_t len, imucap_log_t *m)
{
    if (len < 1u) {
        return IMUCAP_ERR_PAYLOAD;
    }
    m->level = p[0];
    m->text.ptr = (const char *)(p + 1);
    m->text.len = len - 1u;
    return IMUCAP_OK;
}

imucap_status_t imucap_parse_command(const imucap_frame_t *f, imucap_cmd_t *cmd)
{
    const uint8_t *p = f->payload;
    size_t len = f->payload_len;
    memset(cmd, 0, sizeof *cmd);
    cmd->type = f->type;
    cmd->seq = f->seq;
    cmd->major = f->major;
    cmd->minor = f->minor;
    switch (f->type) {
    case IMUCAP_MSG_GET_INFO:
    case IMUCAP_MSG_START:
    case IMUCAP_MSG_STOP:
        return IMUCAP_OK;
    case IMUCAP_MSG_SET_RATE:
        if (len < IMUCAP_SET_RATE_SIZE) {
            return IMUCAP_ERR_PAYLOAD;
        }
        cmd->set_rate.rate_hz = imucap_get_le16(p);
        cmd->set_rate.samples_per_frame = p[2];
        return IMUCAP_OK;
    case IMUCAP_MSG_PING:
        if (len < IMUCAP_PING_SIZE) {
            return IMUCAP_ERR_PAYLOAD;
        }
        cmd->ping.nonce = imucap_get_le32(p);
        cmd->ping.host_time_us = imucap_get_le64(p + 4);
        return IMUCAP_OK;
    default:
        return IMUCAP_ERR_TYPE;
    }
}

int16_t imucap_samples_value(const imucap_samples_t *m, size_t index)
{
    if (m->values != NULL) {
        return m->values[index];
    }
    return imucap_get_le_i16(m->records + 2u * index);
}

/* ------------------------------------------------------------------ receiver */

void imucap_rx_init(imucap_rx_t *rx, uint8_t *buf, size_t cap)
{
    memset(rx, 0, sizeof *rx);
    rx->buf = buf;
    rx->cap = buf != NULL ? cap : 0u;
}

void imucap_rx_reset(imucap_rx_t *rx)
{
    rx->len = 0;
    rx->overflow = false;
}

uint32_t imucap_rx_bad_frames(const imucap_rx_t *rx)
{
    const imucap_rx_counters_t *c = &rx->counters;
    return c->crc_errors + c->cobs_errors + c->short_frames + c->oversize_frames +
           c->payload_errors;
}

imucap_rx_event_t imucap_rx_push(imucap_rx_t *rx, uint8_t byte, imucap_cmd_t *cmd)
{
    imucap_rx_counters_t *c = &rx->counters;
    imucap_frame_t f;
    imucap_status_t st;
    size_t len;

    c->bytes_in++;
    if (byte != 0u) {
        if (rx->len < rx->cap) {
            rx->buf[rx->len++] = byte;
        } else {
            rx->overflow = true; /* keep counting until the delimiter, then drop it */
        }
        return IMUCAP_RX_NONE;
    }

    /* A delimiter ends the frame. */
    len = rx->len;
    rx->len = 0;
    if (rx->overflow) {
        rx->overflow = false;
        c->oversize_frames++;
        return IMUCAP_RX_BAD;
    }
    if (len == 0u) {
        return IMUCAP_RX_NONE; /* empty frame: senders may flush with extra delimiters */
    }

    st = imucap_decode_frame(rx->buf, len, &f);
    switch (st) {
    case IMUCAP_OK:
        break;
    case IMUCAP_ERR_VERSION:
        c->version_errors++;
        memset(cmd, 0, sizeof *cmd);
        cmd->type = f.type;
        cmd->seq = f.seq;
        cmd->major = f.major;
        cmd->minor = f.minor;
        return IMUCAP_RX_VERSION;
    case IMUCAP_ERR_COBS:
        c->cobs_errors++;
        return IMUCAP_RX_BAD;
    case IMUCAP_ERR_SHORT:
        c->short_frames++;
        return IMUCAP_RX_BAD;
    case IMUCAP_ERR_OVERSIZE:
        c->oversize_frames++;
        return IMUCAP_RX_BAD;
    case IMUCAP_ERR_CRC:
    default:
        c->crc_errors++;
        return IMUCAP_RX_BAD;
    }

    st = imucap_parse_command(&f, cmd);
    if (st == IMUCAP_ERR_PAYLOAD) {
        c->payload_errors++;
        return IMUCAP_RX_BAD;
    }
    c->frames_ok++;
    if (st == IMUCAP_ERR_TYPE) {
        c->unknown_types++;
        return IMUCAP_RX_IGNORED;
    }
    return IMUCAP_RX_COMMAND;
}

/* ------------------------------------------------------------------ packet links (BLE, UDP) */

void imucap_hex(char *out, uint32_t v, unsigned digits)
{
    static const char hex_digits[] = "0123456789abcdef";
    unsigned i;
    if (digits > 8u) {
        digits = 8u;
    }
    for (i = 0; i < digits; i++) {
        unsigned shift = 4u * (digits - 1u - i);
        out[i] = hex_digits[(v >> shift) & 0x0Fu];
    }
    out[digits] = '\0';
}

void imucap_ble_default_name(char *out, uint32_t device_id)
{
    memcpy(out, "imucap-", 7u);
    imucap_hex(out + 7, device_id & 0xFFFFu, 4u);
}

/* Value size at an ATT_MTU, 0 when the ATT_MTU is invalid. */
static size_t ble_value_size(unsigned att_mtu)
{
    if (att_mtu < IMUCAP_BLE_DEFAULT_ATT_MTU) {
        return 0u;
    }
    return IMUCAP_BLE_VALUE_SIZE((size_t)att_mtu);
}

static void chunker_emit(imucap_chunker_t *c, const uint8_t *data, size_t len)
{
    if (c->emit(c->ctx, data, len)) {
        c->values_sent++;
    } else {
        c->values_dropped++;
    }
}

/* Emits every full value of the held bytes and moves the rest to the front. */
static void chunker_emit_held_full(imucap_chunker_t *c)
{
    size_t off = 0;
    while (c->len - off >= c->size) {
        chunker_emit(c, c->buf + off, c->size);
        off += c->size;
    }
    if (off > 0u) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
}

bool imucap_chunker_init(imucap_chunker_t *c, uint8_t *buf, size_t cap, unsigned att_mtu,
                         imucap_emit_fn emit, void *ctx)
{
    size_t size = ble_value_size(att_mtu);
    memset(c, 0, sizeof *c);
    if (size == 0u || buf == NULL || cap < size || emit == NULL) {
        return false;
    }
    c->buf = buf;
    c->cap = cap;
    c->size = size;
    c->emit = emit;
    c->ctx = ctx;
    return true;
}

bool imucap_chunker_set_mtu(imucap_chunker_t *c, unsigned att_mtu)
{
    size_t size = ble_value_size(att_mtu);
    if (size == 0u || size > c->cap || c->emit == NULL) {
        return false;
    }
    c->size = size;
    chunker_emit_held_full(c);
    return true;
}

void imucap_chunker_write(imucap_chunker_t *c, const uint8_t *data, size_t len)
{
    if (c->emit == NULL) {
        return;
    }
    while (len > 0u) {
        size_t n;
        if (c->len == 0u && len >= c->size) { /* a whole value straight from the input */
            chunker_emit(c, data, c->size);
            data += c->size;
            len -= c->size;
            continue;
        }
        n = c->size - c->len;
        if (n > len) {
            n = len;
        }
        memcpy(c->buf + c->len, data, n);
        c->len += n;
        data += n;
        len -= n;
        if (c->len == c->size) {
            chunker_emit(c, c->buf, c->len);
            c->len = 0;
        }
    }
}

void imucap_chunker_flush(imucap_chunker_t *c)
{
    if (c->emit != NULL && c->len > 0u) {
        chunker_emit(c, c->buf, c->len);
        c->len = 0;
    }
}

void imucap_chunker_reset(imucap_chunker_t *c)
{
    c->len = 0;
}

size_t imucap_chunker_pending(const imucap_chunker_t *c)
{
    return c->len;
}

static void packer_emit(imucap_packer_t *p, const uint8_t *data, size_t len)
{
    if (p->emit(p->ctx, data, len)) {
        p->datagrams_sent++;
    } else {
        p->datagrams_dropped++;
    }
}

/* Adds one whole frame (delimiter included, len >= 2). */
static void packer_add_frame(imucap_packer_t *p, const uint8_t *frame, size_t len)
{
    if (p->len > 0u && p->len + len > p->max_size) {
        packer_emit(p, p->buf, p->len);
        p->len = 0;
    }
    if (len > p->max_size) { /* too long for any datagram: alone (the held one went first) */
        packer_emit(p, frame, len);
        return;
    }
    memcpy(p->buf + p->len, frame, len);
    p->len += len;
    if (p->len == p->max_size) { /* no frame fits any more: send it now */
        packer_emit(p, p->buf, p->len);
        p->len = 0;
    }
}

bool imucap_packer_init(imucap_packer_t *p, uint8_t *buf, size_t cap, size_t max_size,
                        imucap_emit_fn emit, void *ctx)
{
    memset(p, 0, sizeof *p);
    if (emit == NULL || cap < max_size || (buf == NULL && max_size > 0u)) {
        return false;
    }
    p->buf = buf;
    p->cap = cap;
    p->max_size = max_size;
    p->emit = emit;
    p->ctx = ctx;
    return true;
}

void imucap_packer_write(imucap_packer_t *p, const uint8_t *data, size_t len)
{
    size_t start = 0, i;
    if (p->emit == NULL) {
        return;
    }
    for (i = 0; i < len; i++) {
        if (data[i] != 0u) {
            continue;
        }
        if (i > start) { /* a frame of i - start bytes and its delimiter */
            packer_add_frame(p, data + start, i + 1u - start);
        }
        start = i + 1u; /* an empty frame (a lone 0x00) is skipped */
    }
    p->bytes_discarded += (uint32_t)(len - start);
}

void imucap_packer_flush(imucap_packer_t *p)
{
    if (p->emit != NULL && p->len > 0u) {
        packer_emit(p, p->buf, p->len);
        p->len = 0;
    }
}

void imucap_packer_reset(imucap_packer_t *p)
{
    p->len = 0;
}

size_t imucap_packer_pending(const imucap_packer_t *p)
{
    return p->len;
}
