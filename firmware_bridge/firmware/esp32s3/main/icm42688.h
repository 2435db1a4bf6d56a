/*
 * Minimal ICM-42688-P driver over SPI for ESP-IDF 5.x: reset, configure, read accel + gyro.
 *
 * Several sensors share one SPI bus (SCLK, MOSI, MISO); each has its own chip-select GPIO,
 * driven by this driver (so more sensors fit on a bus than its hardware CS lines).
 * Register facts are from the ICM-42688-P datasheet (TDK InvenSense DS-000347), user bank 0.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "driver/spi_master.h"

/* Full scales this driver programs; DEVICE_INFO announces them to the host. */
#define ICM42688_ACCEL_RANGE_G 8
#define ICM42688_GYRO_RANGE_DPS 1000

typedef struct {
    spi_device_handle_t spi; /* the shared bus device (software chip select) */
    int cs_gpio;             /* this sensor's chip select, active low */
    bool ok;                 /* answered WHO_AM_I and was configured */
    int64_t ready_at_us;     /* esp_timer time from which its data is valid (start-up) */
} icm42688_t;

/* Starts the SPI bus and one device on it with no hardware chip select (mode 0, no DMA:
 * transfers are 13 bytes at most). */
esp_err_t icm42688_bus_init(spi_host_device_t host, int sclk, int mosi, int miso, int clock_hz,
                            spi_device_handle_t *spi);

/* Binds a sensor to the bus and its chip-select GPIO (configured as output, high). Call it for
 * every sensor before talking to any of them: an idle sensor must see CS high. */
esp_err_t icm42688_attach(icm42688_t *dev, spi_device_handle_t spi, int cs_gpio);

/* Output data rates the chip offers up to 1 kHz: 25, 50, 100, 200, 500 and 1000 Hz. */
bool icm42688_rate_supported(uint16_t hz);
/* The supported rate nearest to `hz` (1000 for anything above). */
uint16_t icm42688_nearest_rate(uint16_t hz);

/* Soft reset, WHO_AM_I check (0x47), then icm42688_configure(). Sets dev->ok. Takes ~1.3 ms. */
bool icm42688_reset_and_configure(icm42688_t *dev, uint16_t odr_hz);
/* Disables the I2C interface, sets +-8 g / +-1000 dps at `odr_hz` and powers accel and gyro in
 * low-noise mode; data is valid ~50 ms later (gyro start-up), see ready_at_us. Sets dev->ok. */
bool icm42688_configure(icm42688_t *dev, uint16_t odr_hz);
/* Changes the output data rate of a running sensor. */
bool icm42688_set_rate(icm42688_t *dev, uint16_t odr_hz);
/* True when the sensor answers WHO_AM_I with 0x47. */
bool icm42688_who_am_i_ok(icm42688_t *dev);
/* Reads accel x, y, z and gyro x, y, z (raw int16 counts) in one burst. False on an SPI error
 * or data that cannot come from a working sensor (bus stuck at 0x00/0xFF, or all six values
 * at -32768, the chip's "no data" value). */
bool icm42688_read(icm42688_t *dev, int16_t out[6]);
