/*
 * Minimal ICM-42688-P driver over SPI (see icm42688.h).
 */
#include "icm42688.h"

#include <string.h>

#include "driver/gpio.h"
#include "esp_rom_sys.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

/* User bank 0 registers (datasheet section 14). */
#define REG_DEVICE_CONFIG 0x11 /* bit 0 SOFT_RESET_CONFIG */
#define REG_ACCEL_DATA_X1 0x1F /* ACCEL_DATA_X1..GYRO_DATA_Z0 = 0x1F..0x2A, 12 bytes */
#define REG_INTF_CONFIG0 0x4C  /* bits 1:0 UI_SIFS_CFG; bit 4 SENSOR_DATA_ENDIAN (1: big) */
#define REG_PWR_MGMT0 0x4E     /* bits 3:2 GYRO_MODE, bits 1:0 ACCEL_MODE */
#define REG_GYRO_CONFIG0 0x4F  /* bits 7:5 GYRO_FS_SEL, bits 3:0 GYRO_ODR */
#define REG_ACCEL_CONFIG0 0x50 /* bits 7:5 ACCEL_FS_SEL, bits 3:0 ACCEL_ODR */
#define REG_WHO_AM_I 0x75
#define REG_BANK_SEL 0x76

#define WHO_AM_I_ICM42688P 0x47
#define SPI_READ_BIT 0x80
#define SOFT_RESET 0x01
#define UI_SIFS_DISABLE_I2C 0x03 /* SPI only: shared SCLK/MOSI never look like I2C traffic */
#define GYRO_FS_1000DPS (1u << 5) /* GYRO_FS_SEL 001 */
#define ACCEL_FS_8G (1u << 5)     /* ACCEL_FS_SEL 001 */
#define PWR_GYRO_LN_ACCEL_LN 0x0F /* GYRO_MODE 11, ACCEL_MODE 11: low-noise mode */

#define RESET_WAIT_MS 2             /* datasheet: 1 ms after a soft reset */
#define PWR_MGMT0_WAIT_US 300       /* datasheet: no register write for 200 us after PWR_MGMT0 */
#define STARTUP_US (50 * 1000)      /* gyro start-up 45 ms (accel ~10 ms) */

/* GYRO_ODR / ACCEL_ODR codes (same for both) for the rates up to 1 kHz. */
static const struct {
    uint16_t hz;
    uint8_t code;
} ODR_CODES[] = {
    {25, 0x0A}, {50, 0x09}, {100, 0x08}, {200, 0x07}, {500, 0x0F}, {1000, 0x06},
};
#define ODR_COUNT (sizeof ODR_CODES / sizeof ODR_CODES[0])

static esp_err_t transfer(icm42688_t *dev, const uint8_t *tx, uint8_t *rx, size_t len)
{
    spi_transaction_t t;
    esp_err_t err;
    memset(&t, 0, sizeof t);
    t.length = 8 * len;
    t.tx_buffer = tx;
    t.rx_buffer = rx;
    gpio_set_level(dev->cs_gpio, 0);
    err = spi_device_polling_transmit(dev->spi, &t);
    gpio_set_level(dev->cs_gpio, 1);
    return err;
}

static bool write_reg(icm42688_t *dev, uint8_t reg, uint8_t value)
{
    uint8_t tx[2] = {reg, value};
    uint8_t rx[2];
    return transfer(dev, tx, rx, sizeof tx) == ESP_OK;
}

/* Reads n (<= 12) consecutive registers from `reg`; the chip auto-increments the address. */
static bool read_regs(icm42688_t *dev, uint8_t reg, uint8_t *out, size_t n)
{
    uint8_t tx[13] = {0};
    uint8_t rx[13];
    if (n > sizeof tx - 1) {
        return false;
    }
    tx[0] = (uint8_t)(reg | SPI_READ_BIT);
    if (transfer(dev, tx, rx, n + 1) != ESP_OK) {
        return false;
    }
    memcpy(out, rx + 1, n); /* rx[0] arrived while the address was sent */
    return true;
}

static uint8_t odr_code(uint16_t hz)
{
    for (size_t i = 0; i < ODR_COUNT; i++) {
        if (ODR_CODES[i].hz == hz) {
            return ODR_CODES[i].code;
        }
    }
    return 0x08; /* 100 Hz */
}

esp_err_t icm42688_bus_init(spi_host_device_t host, int sclk, int mosi, int miso, int clock_hz,
                            spi_device_handle_t *spi)
{
    spi_bus_config_t bus = {
        .mosi_io_num = mosi,
        .miso_io_num = miso,
        .sclk_io_num = sclk,
        .quadwp_io_num = -1,
        .quadhd_io_num = -1,
        .max_transfer_sz = 64,
    };
    spi_device_interface_config_t device = {
        .mode = 0, /* CPOL 0, CPHA 0 (the chip also takes mode 3) */
        .clock_speed_hz = clock_hz,
        .spics_io_num = -1, /* chip selects are driven per sensor in transfer() */
        .queue_size = 1,
    };
    esp_err_t err = spi_bus_initialize(host, &bus, SPI_DMA_DISABLED);
    if (err != ESP_OK) {
        return err;
    }
    /* A missing sensor leaves MISO floating: pull it up so it reads 0xFF, which
     * icm42688_read() and the WHO_AM_I check reject. */
    gpio_set_pull_mode(miso, GPIO_PULLUP_ONLY);
    return spi_bus_add_device(host, &device, spi);
}

esp_err_t icm42688_attach(icm42688_t *dev, spi_device_handle_t spi, int cs_gpio)
{
    gpio_config_t io = {
        .pin_bit_mask = 1ULL << cs_gpio,
        .mode = GPIO_MODE_OUTPUT,
        .pull_up_en = GPIO_PULLUP_DISABLE,
        .pull_down_en = GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_DISABLE,
    };
    memset(dev, 0, sizeof *dev);
    dev->spi = spi;
    dev->cs_gpio = cs_gpio;
    gpio_set_level(cs_gpio, 1);
    esp_err_t err = gpio_config(&io);
    gpio_set_level(cs_gpio, 1);
    return err;
}

bool icm42688_rate_supported(uint16_t hz)
{
    for (size_t i = 0; i < ODR_COUNT; i++) {
        if (ODR_CODES[i].hz == hz) {
            return true;
        }
    }
    return false;
}

uint16_t icm42688_nearest_rate(uint16_t hz)
{
    uint16_t best = ODR_CODES[0].hz;
    for (size_t i = 1; i < ODR_COUNT; i++) {
        unsigned d_best = hz > best ? hz - best : best - hz;
        unsigned d = hz > ODR_CODES[i].hz ? hz - ODR_CODES[i].hz : ODR_CODES[i].hz - hz;
        if (d <= d_best) {
            best = ODR_CODES[i].hz;
        }
    }
    return best;
}

bool icm42688_who_am_i_ok(icm42688_t *dev)
{
    uint8_t id = 0;
    return read_regs(dev, REG_WHO_AM_I, &id, 1) && id == WHO_AM_I_ICM42688P;
}

bool icm42688_reset_and_configure(icm42688_t *dev, uint16_t odr_hz)
{
    dev->ok = false;
    if (!write_reg(dev, REG_BANK_SEL, 0) || !write_reg(dev, REG_DEVICE_CONFIG, SOFT_RESET)) {
        return false;
    }
    vTaskDelay(pdMS_TO_TICKS(RESET_WAIT_MS) > 0 ? pdMS_TO_TICKS(RESET_WAIT_MS) : 1);
    return icm42688_configure(dev, odr_hz);
}

bool icm42688_configure(icm42688_t *dev, uint16_t odr_hz)
{
    uint8_t intf = 0;
    uint8_t code = odr_code(odr_hz);
    dev->ok = false;
    if (!write_reg(dev, REG_BANK_SEL, 0) || !icm42688_who_am_i_ok(dev) ||
        !read_regs(dev, REG_INTF_CONFIG0, &intf, 1)) {
        return false;
    }
    /* Keep the reset endianness (big-endian data registers), disable I2C. */
    intf = (uint8_t)((intf & ~0x03u) | UI_SIFS_DISABLE_I2C);
    if (!write_reg(dev, REG_INTF_CONFIG0, intf) ||
        !write_reg(dev, REG_GYRO_CONFIG0, (uint8_t)(GYRO_FS_1000DPS | code)) ||
        !write_reg(dev, REG_ACCEL_CONFIG0, (uint8_t)(ACCEL_FS_8G | code)) ||
        !write_reg(dev, REG_PWR_MGMT0, PWR_GYRO_LN_ACCEL_LN)) {
        return false;
    }
    esp_rom_delay_us(PWR_MGMT0_WAIT_US);
    dev->ready_at_us = esp_timer_get_time() + STARTUP_US;
    dev->ok = true;
    return true;
}

bool icm42688_set_rate(icm42688_t *dev, uint16_t odr_hz)
{
    uint8_t code = odr_code(odr_hz);
    return write_reg(dev, REG_GYRO_CONFIG0, (uint8_t)(GYRO_FS_1000DPS | code)) &&
           write_reg(dev, REG_ACCEL_CONFIG0, (uint8_t)(ACCEL_FS_8G | code));
}

bool icm42688_read(icm42688_t *dev, int16_t out[6])
{
    uint8_t raw[12];
    bool all_zero = true;
    bool all_ones = true;
    bool all_invalid = true;
    if (!read_regs(dev, REG_ACCEL_DATA_X1, raw, sizeof raw)) {
        return false;
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        all_zero = all_zero && raw[i] == 0x00;
        all_ones = all_ones && raw[i] == 0xFF;
    }
    for (size_t k = 0; k < 6; k++) {
        /* Data registers are big-endian: X1 (high byte) first. */
        uint16_t u = (uint16_t)((raw[2 * k] << 8) | raw[2 * k + 1]);
        out[k] = (int16_t)u;
        all_invalid = all_invalid && u == 0x8000;
    }
    return !(all_zero || all_ones || all_invalid);
}
