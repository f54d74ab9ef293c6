/* Runs the MCU link test vectors (mculink_vectors.h) against the C reference.
 *
 *     cc -std=c99 -Wall -Wextra -Werror mculink.c mculink_test.c -o mculink_test && ./mculink_test
 *
 * Prints one line per failed vector and a summary; exits 0 only when every vector passes.
 */
#include <stdio.h>
#include <string.h>

#include "mculink.h"
#include "mculink_vectors.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int failures, checks;

static void check(int ok, const char *what, const char *name) {
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL %s: %s\n", what, name);
    }
}

static int same(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len) {
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

/* A random source that hands out queued chunks in order (the vectors' fixed randoms). */
struct queue {
    const uint8_t *chunks[4];
    size_t lens[4];
    int next, bad;
};

static void from_queue(void *ctx, uint8_t *out, size_t n) {
    struct queue *q = ctx;
    if (q->next >= 4 || q->lens[q->next] != n) {
        q->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, q->chunks[q->next++], n);
}

/* Every event of one ml_feed() call, with copies of their bytes. */
struct recorded {
    size_t n;
    int kind[8];
    uint8_t data[8][ML_MAX_WIRE];
    size_t len[8];
    int stored[8];
};

static void record(void *ctx, const ml_event *ev) {
    struct recorded *r = ctx;
    if (r->n == 8) return;
    r->kind[r->n] = ev->kind;
    r->len[r->n] = ev->len;
    r->stored[r->n] = ev->stored;
    if (ev->len) memcpy(r->data[r->n], ev->data, ev->len);
    r->n++;
}

static void test_primitives(void) {
    uint8_t out[600];
    for (size_t i = 0; i < COUNT(CRC_VECTORS); i++)
        check(ml_crc32(CRC_VECTORS[i].data, CRC_VECTORS[i].len) == CRC_VECTORS[i].crc, "crc32",
              "vector");
    for (size_t i = 0; i < COUNT(COBS_VECTORS); i++) {
        const struct cobs_vec *v = &COBS_VECTORS[i];
        size_t n = ml_cobs_encode(v->dec, v->dec_len, out);
        check(same(out, n, v->enc, v->enc_len), "cobs encode", "vector");
        long d = ml_cobs_decode(v->enc, v->enc_len, out);
        check(d >= 0 && same(out, (size_t)d, v->dec, v->dec_len), "cobs decode", "vector");
    }
}

static void test_messages(void) {
    uint8_t out[ML_MAX_FRAME];
    for (size_t i = 0; i < COUNT(MSG_VECTORS); i++) {
        const struct msg_vec *v = &MSG_VECTORS[i];
        ml_msg m, back;
        memset(&m, 0, sizeof m);
        m.type = v->type, m.seq = v->seq, m.flag = v->flag, m.code = v->code;
        memcpy(m.f, v->f, sizeof m.f);
        if (v->key_len) memcpy(m.key, v->key, ML_KEY_LEN);
        m.text_len = strlen(v->text);
        memcpy(m.text, v->text, m.text_len);
        size_t n = ml_msg_encode(&m, out);
        check(same(out, n, v->payload, v->payload_len), "message encode", "vector");
        int ok = ml_msg_decode(v->payload, v->payload_len, &back) == 0;
        ok = ok && back.type == m.type && back.seq == m.seq && back.flag == m.flag &&
             back.code == m.code && memcmp(back.f, m.f, sizeof m.f) == 0 &&
             memcmp(back.key, m.key, ML_KEY_LEN) == 0 &&
             same((const uint8_t *)back.text, back.text_len, (const uint8_t *)m.text, m.text_len);
        check(ok, "message decode", "vector");
    }
    for (size_t i = 0; i < COUNT(BAD_PAYLOADS); i++) {
        ml_msg m;
        check(ml_msg_decode(BAD_PAYLOADS[i].data, BAD_PAYLOADS[i].len, &m) != 0, "bad payload",
              "vector");
    }
}

/* Host and MCU after the vectors' handshake; returns 0 if the handshake itself failed. */
static int handshake(ml_codec *host, ml_codec *mcu, struct queue *hq, struct queue *mq) {
    uint8_t hello[ML_MAX_WIRE];
    struct recorded r = {0};
    *hq = (struct queue){{SESSION_HOST_RANDOM, SESSION_HELLO_NONCE}, {16, 12}, 0, 0};
    *mq = (struct queue){{SESSION_MCU_RANDOM, SESSION_HELLO_ACK_NONCE}, {16, 12}, 0, 0};
    ml_init(host, ML_ROLE_HOST, SESSION_KEY, from_queue, hq);
    ml_init(mcu, ML_ROLE_MCU, SESSION_KEY, from_queue, mq);
    size_t n = ml_start(host, hello);
    int ok = same(hello, n, SESSION_HELLO.data, SESSION_HELLO.len);
    ml_feed(mcu, hello, n, record, &r);
    ok = ok && r.n == 2 && r.kind[0] == ML_EV_TRANSMIT && r.kind[1] == ML_EV_SESSION &&
         same(r.data[0], r.len[0], SESSION_HELLO_ACK.data, SESSION_HELLO_ACK.len);
    struct recorded r2 = {0};
    ml_feed(host, r.data[0], r.len[0], record, &r2);
    ok = ok && r2.n == 1 && r2.kind[0] == ML_EV_SESSION && host->established && mcu->established;
    ok = ok && memcmp(host->session_key, SESSION_KEY_DERIVED, 32) == 0 &&
         memcmp(mcu->session_key, SESSION_KEY_DERIVED, 32) == 0 && !hq->bad && !mq->bad;
    return ok;
}

static void test_session(void) {
    ml_codec host, mcu;
    struct queue hq, mq;
    uint8_t wire[ML_MAX_WIRE];
    check(handshake(&host, &mcu, &hq, &mq), "handshake", "HELLO / HELLO_ACK / session key");
    for (size_t i = 0; i < COUNT(SESSION_FRAMES); i++) {
        const struct frame_vec *v = &SESSION_FRAMES[i];
        ml_codec *from = v->from == ML_ROLE_HOST ? &host : &mcu;
        ml_codec *to = v->from == ML_ROLE_HOST ? &mcu : &host;
        struct recorded r = {0};
        size_t n = ml_send(from, v->payload, v->payload_len, wire);
        check(same(wire, n, v->wire, v->wire_len), "session frame encode", "vector");
        ml_feed(to, v->wire, v->wire_len, record, &r);
        check(r.n == 1 && r.kind[0] == ML_EV_MESSAGE &&
                  same(r.data[0], r.len[0], v->payload, v->payload_len),
              "session frame decode", "vector");
    }
}

static void test_provision(void) {
    ml_codec host, blank;
    uint8_t wire[ML_MAX_WIRE];
    struct recorded r = {0}, r2 = {0};
    ml_init(&host, ML_ROLE_HOST, SESSION_KEY, NULL, NULL);
    ml_init(&blank, ML_ROLE_MCU, NULL, NULL, NULL);
    size_t n = ml_provision(&host, PROVISION_NEW_KEY, wire);
    check(same(wire, n, PROVISION_PROVISION.data, PROVISION_PROVISION.len), "provision", "encode");
    ml_feed(&blank, wire, n, record, &r);
    check(r.n == 2 && r.kind[0] == ML_EV_KEY_PROVISIONED && r.kind[1] == ML_EV_TRANSMIT &&
              same(r.data[1], r.len[1], PROVISION_ACK_STORED.data, PROVISION_ACK_STORED.len) &&
              blank.has_key && memcmp(blank.key, PROVISION_NEW_KEY, 32) == 0,
          "provision", "blank MCU stores the key");
    ml_feed(&host, PROVISION_ACK_STORED.data, PROVISION_ACK_STORED.len, record, &r2);
    check(r2.n == 1 && r2.kind[0] == ML_EV_PROVISION_ANSWERED && r2.stored[0] == 1, "provision",
          "host reads the answer");
}

static void test_receive(void) {
    for (size_t i = 0; i < COUNT(RX_VECTORS); i++) {
        const struct rx_vec *v = &RX_VECTORS[i];
        ml_codec host, mcu, *to = v->to == ML_ROLE_HOST ? &host : &mcu;
        struct queue hq, mq;
        struct recorded r = {0};
        if (v->state == RX_SESSION) {
            handshake(&host, &mcu, &hq, &mq);
        } else {
            ml_init(&host, ML_ROLE_HOST, SESSION_KEY, NULL, NULL);
            ml_init(&mcu, ML_ROLE_MCU, v->state == RX_KEYED ? SESSION_KEY : NULL, NULL, NULL);
        }
        ml_feed(to, v->wire, v->wire_len, record, &r);
        int ok = r.n == v->n;
        for (size_t k = 0; ok && k < v->n; k++) {
            ok = r.kind[k] == v->e[k].kind;
            if (ok && v->e[k].len) ok = same(r.data[k], r.len[k], v->e[k].data, v->e[k].len);
        }
        check(ok, "receive", v->name);
    }
}

int main(void) {
    test_primitives();
    test_messages();
    test_session();
    test_provision();
    test_receive();
    printf("%s: %d of %d checks passed\n", failures ? "FAILED" : "ok", checks - failures, checks);
    return failures ? 1 : 0;
}
