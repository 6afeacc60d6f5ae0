/* libhsmtls API tests for the session cache: mode, size, flushing and the counters,
 * checked against resumption by session ID (TLS 1.2, tickets off) between two ends in
 * this process, over memory.
 * usage: test_lib_cache SANDBOX_DIR session_cache */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "lib_check.h"
#include "hsmtls/config.h"
#include "hsmtls/conn.h"

static hsmtls_session_stats stats_of(hsmtls_config *cfg)
{
    hsmtls_session_stats s;
    CHECK(hsmtls_config_session_stats(cfg, &s) == 0);
    return s;
}

/* One connection; resumes sess when given; returns whether the server resumed, and
 * hands back the client's session in *out when asked. */
static int connect_once(hsmtls_config *cc, hsmtls_config *sc, hsmtls_session *sess, hsmtls_session **out)
{
    hsmtls_conn *cli, *srv;
    int rs;
    check_pair(cc, sc, &cli, &srv);
    if (sess)
        CHECK(hsmtls_conn_set_session(cli, sess) == 0);
    CHECK_MSG(check_handshake(cli, srv, &rs) == 0 && rs == 0, hsmtls_conn_error_message(cli));
    int reused = hsmtls_conn_session_reused(srv);
    CHECK(reused == hsmtls_conn_session_reused(cli));
    if (out)
        *out = hsmtls_conn_session(cli);
    check_close(cli, srv);
    return reused;
}

static void case_session_cache(void)
{
    hsmtls_config *sc = check_server_config("ec-p256"), *cc = check_client_config();

    /* defaults and bad values */
    CHECK(hsmtls_config_session_cache_mode(sc) == HSMTLS_SESS_CACHE_SERVER);
    CHECK(hsmtls_config_session_cache_size(sc) == 20480);
    CHECK(hsmtls_config_set_session_cache_mode(sc, 7) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_config_error(sc), "session cache mode 7"));
    CHECK(hsmtls_config_set_session_cache_size(sc, -5) == HSMTLS_ERROR);
    CHECK(check_contains(hsmtls_config_error(sc), "session cache size -5"));
    CHECK(hsmtls_config_session_stats(sc, NULL) == HSMTLS_ERROR);
    hsmtls_session_stats s = stats_of(sc);
    CHECK(s.number == 0 && s.accept == 0 && s.hits == 0);

    CHECK(hsmtls_config_set_session_tickets(sc, 0) == 0);
    CHECK(hsmtls_config_set_protocols(cc, HSMTLS_TLS1_2, HSMTLS_TLS1_2) == 0);

    /* cache on: the second connection resumes by session ID */
    hsmtls_session *sess = NULL;
    CHECK(connect_once(cc, sc, NULL, &sess) == 0);
    CHECK(sess && !hsmtls_session_has_ticket(sess));
    s = stats_of(sc);
    CHECK(s.number == 1 && s.hits == 0 && s.accept == 1 && s.accept_good == 1);
    CHECK(connect_once(cc, sc, sess, NULL) == 1);
    s = stats_of(sc);
    CHECK(s.number == 1 && s.hits == 1 && s.misses == 0 && s.accept_good == 2);
    /* the client counts its side; its cache (SERVER mode: none) keeps nothing */
    s = stats_of(cc);
    CHECK(s.connect == 2 && s.connect_good == 2 && s.number == 0 && s.accept == 0);

    /* flushing: nothing has expired; then everything goes, and resuming misses */
    CHECK(hsmtls_config_flush_sessions(sc, 0) == 0);
    CHECK(hsmtls_config_flush_sessions(sc, 1) == 1);
    CHECK(stats_of(sc).number == 0);
    CHECK(connect_once(cc, sc, sess, NULL) == 0);
    s = stats_of(sc);
    CHECK(s.misses == 1 && s.number == 1);
    hsmtls_session_free(sess);

    /* a client cache keeps the client's sessions */
    CHECK(hsmtls_config_set_session_cache_mode(cc, HSMTLS_SESS_CACHE_CLIENT) == 0);
    CHECK(hsmtls_config_session_cache_mode(cc) == HSMTLS_SESS_CACHE_CLIENT);
    CHECK(stats_of(cc).connect == 0); /* a setter starts a new context, counters and all */
    CHECK(connect_once(cc, sc, NULL, NULL) == 0);
    CHECK(stats_of(cc).number == 1);

    /* a size of one: a second session pushes the first out */
    CHECK(hsmtls_config_set_session_cache_size(sc, 1) == 0 && hsmtls_config_session_cache_size(sc) == 1);
    hsmtls_session *first = NULL;
    CHECK(connect_once(cc, sc, NULL, &first) == 0);
    CHECK(connect_once(cc, sc, NULL, NULL) == 0);
    s = stats_of(sc);
    CHECK_MSG(s.number == 1 && s.cache_full >= 1, "cache of one");
    CHECK(connect_once(cc, sc, first, NULL) == 0);
    hsmtls_session_free(first);

    /* cache off: no session ID to resume at all */
    CHECK(hsmtls_config_set_session_cache_mode(sc, HSMTLS_SESS_CACHE_OFF) == 0);
    CHECK(connect_once(cc, sc, NULL, &sess) == 0);
    CHECK(sess == NULL); /* not resumable: nothing to keep */
    s = stats_of(sc);
    CHECK(s.number == 0 && s.accept_good == 1);

    /* copies and equality carry mode and size */
    hsmtls_config *copy = hsmtls_config_copy(sc);
    CHECK(copy && hsmtls_config_equal(sc, copy));
    CHECK(hsmtls_config_session_cache_mode(copy) == HSMTLS_SESS_CACHE_OFF && hsmtls_config_session_cache_size(copy) == 1);
    CHECK(hsmtls_config_set_session_cache_size(copy, 0) == 0 && !hsmtls_config_equal(sc, copy));
    CHECK(hsmtls_config_session_cache_size(copy) == 0);
    CHECK(hsmtls_config_set_session_cache_mode(copy, HSMTLS_SESS_CACHE_BOTH) == 0);
    CHECK(hsmtls_config_session_cache_mode(copy) == HSMTLS_SESS_CACHE_BOTH);
    hsmtls_config_free(copy);
    hsmtls_config_free(sc);
    hsmtls_config_free(cc);
}

int main(int argc, char **argv)
{
    static const check_case cases[] = { { "session_cache", case_session_cache } };
    const check_case *c;
    int start = check_start(argc, argv, cases, CHECK_NCASES(cases), "", 0, &c);
    if (start <= 0)
        return start < 0 ? 2 : 0;
    return check_run(c);
}
