/* Reference encoder/decoder of the chargeport MCU link, protocol version 1.
 *
 * The normative text is docs/mcu-link.md; this file and mculink.c are a portable C99
 * rendering of it for board makers (no allocation, no I/O, no libc beyond <string.h>).
 * It includes everything the link needs: COBS, CRC-32, ChaCha20-Poly1305 (RFC 8439),
 * HKDF-SHA256 (RFC 5869). It passes the same test vectors as the Python codec
 * (hal/mculink/vectors/mculink-v1.json, rendered as mculink_vectors.h).
 *
 * Like the Python codec it is sans-IO: feed received bytes with ml_feed(), write the bytes
 * that ml_start()/ml_send()/ml_provision() return, and act on the events ml_feed() reports.
 * The reference is written for clarity, not for constant-time on every CPU: check the
 * ChaCha20/Poly1305 code against your MCU's timing model (or use its crypto peripheral).
 */
#ifndef MCULINK_H
#define MCULINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ML_KEY_LEN 32
#define ML_MAX_FRAME 256                /* decoded bytes a sender may put in one frame */
#define ML_RX_BUFFER (2 * ML_MAX_FRAME) /* longer runs without 0x00 are garbage */
#define ML_MAX_WIRE (ML_MAX_FRAME + ML_MAX_FRAME / 254 + 3) /* COBS + two delimiters */
#define ML_MAX_TEXT 200

typedef enum { ML_ROLE_HOST = 0x00, ML_ROLE_MCU = 0x01 } ml_role;

typedef enum {
    ML_EV_MESSAGE = 1,         /* data = the message payload (decode with ml_msg_decode) */
    ML_EV_SESSION,             /* a handshake completed */
    ML_EV_TRANSMIT,            /* data = wire bytes to write now (HELLO_ACK, PROVISION_ACK) */
    ML_EV_KEY_PROVISIONED,     /* MCU: data = the new key; persist it before anything else */
    ML_EV_PROVISION_ANSWERED,  /* host: stored = 1 (key taken) or 0 (MCU already has one) */
    ML_DROP_GARBAGE = 16,      /* not COBS, or too long without a delimiter */
    ML_DROP_TRUNCATED,         /* shorter than its frame type allows */
    ML_DROP_CRC,               /* CRC-32 mismatch: line noise */
    ML_DROP_AUTH,              /* CRC right, AEAD tag wrong: tampering or the wrong key */
    ML_DROP_REPLAYED,          /* counter not above the last accepted one */
    ML_DROP_BAD_MESSAGE,       /* authentic, but not a message of this version */
    ML_DROP_UNEXPECTED         /* valid, but makes no sense now (direction, state, type) */
} ml_event_kind;

typedef struct {
    ml_event_kind kind;
    const uint8_t *data;
    size_t len;
    int stored;
} ml_event;

typedef void (*ml_event_fn)(void *ctx, const ml_event *event);
/* Must fill `out` with `n` bytes from a cryptographically secure generator. */
typedef void (*ml_random_fn)(void *ctx, uint8_t *out, size_t n);

typedef struct {
    ml_role role;
    int has_key;
    uint8_t key[ML_KEY_LEN];
    int established;
    uint8_t session_key[ML_KEY_LEN];
    uint64_t tx_counter, rx_counter;
    int hello_pending; /* host: waiting for the HELLO_ACK to host_random */
    uint8_t host_random[16];
    int provisioning; /* host: waiting for a PROVISION_ACK */
    uint8_t buf[ML_RX_BUFFER];
    size_t buf_len;
    int overflow;
    ml_random_fn random;
    void *random_ctx;
} ml_codec;

/* key NULL: a blank MCU (factory state), which answers only PROVISION. */
void ml_init(ml_codec *c, ml_role role, const uint8_t *key, ml_random_fn random, void *ctx);
/* Long-term key for the next handshake; a running session is not affected. */
void ml_rekey(ml_codec *c, const uint8_t key[ML_KEY_LEN]);
/* Host: the HELLO frame (re)starting the handshake. `out` holds ML_MAX_WIRE bytes. */
size_t ml_start(ml_codec *c, uint8_t *out);
/* Host: the PROVISION frame offering `key` to a blank MCU. */
size_t ml_provision(ml_codec *c, const uint8_t key[ML_KEY_LEN], uint8_t *out);
/* A DATA frame carrying `payload` (an encoded message); 0 when no session exists. */
size_t ml_send(ml_codec *c, const uint8_t *payload, size_t len, uint8_t *out);
/* Feed bytes from the line; `on_event` is called for every event and drop, in order. */
void ml_feed(ml_codec *c, const uint8_t *data, size_t len, ml_event_fn on_event, void *ctx);

/* ------------------------------------------------------------------ messages */

typedef enum {
    ML_MSG_PING = 0x01,
    ML_MSG_PONG = 0x02,
    ML_MSG_SET_CP_DUTY = 0x10,
    ML_MSG_SET_CONTACTOR = 0x11,
    ML_MSG_SET_LOCK = 0x12,
    ML_MSG_RESET_RCD = 0x13,
    ML_MSG_SET_LINK_KEY = 0x14,
    ML_MSG_ACK = 0x1F,
    ML_MSG_CP_LEVEL = 0x20,
    ML_MSG_CONTACTOR_FEEDBACK = 0x21,
    ML_MSG_LOCK_FEEDBACK = 0x22,
    ML_MSG_TEMPERATURE = 0x23,
    ML_MSG_RCD_STATUS = 0x24,
    ML_MSG_CURRENTS = 0x25,
    ML_MSG_FAULT = 0x30
} ml_msg_type;

/* One flat record for every message; each type uses the fields its layout names. */
typedef struct {
    uint8_t type;
    uint32_t seq;           /* Ping/Pong: 32 bits; commands and Ack: 16 bits */
    float f[3];             /* percent (SetCpDuty), volts (CpLevel), celsius, l1..l3 */
    uint8_t flag;           /* closed / locked / ok / diode_ok / tripped / active */
    uint16_t code;          /* Fault */
    uint8_t key[ML_KEY_LEN]; /* SetLinkKey */
    char text[ML_MAX_FRAME]; /* Fault, UTF-8, not NUL-terminated on the wire */
    size_t text_len;
} ml_msg;

/* Payload bytes of `m` into `out` (ML_MAX_FRAME bytes); 0 for an unknown type. */
size_t ml_msg_encode(const ml_msg *m, uint8_t *out);
/* 0 on success, -1 when the payload is not a message of this version. */
int ml_msg_decode(const uint8_t *payload, size_t len, ml_msg *m);

/* ------------------------------------------------------------------ primitives */

uint32_t ml_crc32(const uint8_t *data, size_t len);
size_t ml_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);
/* Decoded length, or -1 when `in` is not valid COBS (contains 0x00, or a code overruns). */
long ml_cobs_decode(const uint8_t *in, size_t len, uint8_t *out);
void ml_hkdf_sha256_32(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                       const uint8_t *info, size_t info_len, uint8_t out[32]);
void ml_aead_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
                  size_t aad_len, const uint8_t *plain, size_t len, uint8_t *out /* len+16 */);
/* 0 and the plaintext in `out` when the tag is right; -1 (and `out` untouched) otherwise. */
int ml_aead_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
                 size_t aad_len, const uint8_t *sealed, size_t len, uint8_t *out /* len-16 */);

#ifdef __cplusplus
}
#endif

#endif
