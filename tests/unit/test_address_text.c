/* test_address_text.c: owns format_socket_address() (src/address_text.c):
 * the same text as glibc's inet_ntop plus ":port", edge cases and at random. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "address_text.h"

#define RANDOM_IPV6 200000
#define RANDOM_IPV4 200000
#define SEED 0x5eed2024c105e5edULL

/* ---------------------------------------------------------------- helpers */

/* xorshift64*: fixed seed, so a failure names an address that reproduces. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static struct sockaddr_storage ipv4_address(const unsigned char bytes[4], unsigned port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	memcpy(&in->sin_addr, bytes, 4);
	return ss;
}

static struct sockaddr_storage ipv6_address(const uint16_t groups[8], unsigned port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons((uint16_t)port);
	for (int i = 0; i < 8; i++) {
		in6->sin6_addr.s6_addr[2 * i] = (unsigned char)(groups[i] >> 8);
		in6->sin6_addr.s6_addr[2 * i + 1] = (unsigned char)groups[i];
	}
	return ss;
}

static socklen_t full_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
					: sizeof(struct sockaddr_in6);
}

/* The oracle: glibc's inet_ntop and snprintf. */
static void reference_text(const struct sockaddr_storage *ss, char *out, size_t out_len)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		ck_assert_ptr_nonnull(inet_ntop(AF_INET, &in->sin_addr, host, sizeof host));
		snprintf(out, out_len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host));
		snprintf(out, out_len, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
	}
}

static void describe_groups(char *buf, size_t len, const uint16_t groups[8])
{
	snprintf(buf, len, "%04x %04x %04x %04x %04x %04x %04x %04x",
		 groups[0], groups[1], groups[2], groups[3],
		 groups[4], groups[5], groups[6], groups[7]);
}

/* format_socket_address with a guard byte past out_len and errno watched.
 * Returns 0 when it matches `expected` cut to out_len - 1, else 1 with
 * `why` filled in (so loops of 200000 call ck_abort_msg only on failure). */
static int mismatch(const struct sockaddr_storage *ss, socklen_t len, size_t out_len,
		    const char *expected, char *why, size_t why_len)
{
	char out[ADDRESS_TEXT_MAX + 2];
	size_t want = strlen(expected);

	if (out_len > 0 && want > out_len - 1)
		want = out_len - 1;
	memset(out, '#', sizeof out);
	errno = 4242;
	size_t got = format_socket_address(ss, len, out, out_len);
	int saved = errno;

	if (saved != 4242) {
		snprintf(why, why_len, "errno changed to %d", saved);
		return 1;
	}
	if (out[out_len] != '#') {
		snprintf(why, why_len, "wrote past out_len %zu", out_len);
		return 1;
	}
	if (out_len == 0) {
		if (got != 0) {
			snprintf(why, why_len, "out_len 0 returned %zu", got);
			return 1;
		}
		return 0;
	}
	if (memchr(out, '\0', out_len) == NULL) {
		snprintf(why, why_len, "no NUL within out_len %zu", out_len);
		return 1;
	}
	if (got != strlen(out) || got != want ||
	    strncmp(out, expected, want) != 0) {
		snprintf(why, why_len, "out_len %zu: got \"%s\" (returned %zu), expected \"%.*s\"",
			 out_len, out, got, (int)want, expected);
		return 1;
	}
	return 0;
}

/* Full-length output against the oracle; 0 when they agree. */
static int differs_from_glibc(const struct sockaddr_storage *ss, char *why, size_t why_len)
{
	char expected[128];

	reference_text(ss, expected, sizeof expected);
	return mismatch(ss, full_len(ss), ADDRESS_TEXT_MAX, expected, why, why_len);
}

/* ---------------------------------------------------------------- edge cases */

struct ipv6_case {
	uint16_t groups[8];
	const char *glibc; /* what glibc 2.36 writes, to keep the oracle honest */
};

static const struct ipv6_case ipv6_cases[] = {
	{ { 0, 0, 0, 0, 0, 0, 0, 0 }, "::" },
	{ { 0, 0, 0, 0, 0, 0, 0, 1 }, "::1" },
	{ { 1, 0, 0, 0, 0, 0, 0, 0 }, "1::" },
	{ { 1, 0, 0, 0, 0, 0, 0, 1 }, "1::1" },
	/* IPv4-mapped and IPv4-compatible: dotted tail. */
	{ { 0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304 }, "::ffff:1.2.3.4" },
	{ { 0, 0, 0, 0, 0, 0, 0x0102, 0x0304 }, "::1.2.3.4" },
	{ { 0, 0, 0, 0, 0, 0xffff, 0, 0 }, "::ffff:0.0.0.0" },
	{ { 0, 0, 0, 0, 0, 0xffff, 0, 1 }, "::ffff:0.0.0.1" },
	{ { 0, 0, 0, 0, 0, 0xffff, 0xffff, 0xffff }, "::ffff:255.255.255.255" },
	{ { 0, 0, 0, 0, 0, 0, 0x0001, 0 }, "::0.1.0.0" },
	{ { 0, 0, 0, 0, 0, 0, 0xffff, 0xffff }, "::255.255.255.255" },
	/* ... but only for a run of exactly groups 0-5, or 0-4 before ffff. */
	{ { 0, 0, 0, 0, 0xffff, 0, 0x0102, 0x0304 }, "::ffff:0:102:304" },
	{ { 0, 0, 0, 0, 0, 0xfffe, 0x0102, 0x0304 }, "::fffe:102:304" },
	{ { 0, 0, 0, 0, 0, 1, 0, 0 }, "::1:0:0" },
	{ { 0, 0, 0, 0, 0, 0, 0, 0xffff }, "::ffff" },
	{ { 0, 0, 0, 0, 0, 0, 0xffff, 0 }, "::255.255.0.0" },
	{ { 0, 0, 0, 0, 1, 0xffff, 0x0102, 0x0304 }, "::1:ffff:102:304" },
	{ { 0x64, 0xff9b, 0, 0, 0, 0, 0x0102, 0x0304 }, "64:ff9b::102:304" },
	/* Ties: the first run wins. */
	{ { 0, 0, 1, 0, 0, 0, 0, 1 }, "0:0:1::1" },
	{ { 1, 0, 0, 1, 0, 0, 0, 1 }, "1:0:0:1::1" },
	{ { 1, 0, 0, 1, 0, 0, 1, 1 }, "1::1:0:0:1:1" },
	{ { 0, 0, 1, 0, 0, 1, 0, 0 }, "::1:0:0:1:0:0" },
	{ { 1, 0, 0, 1, 1, 1, 0, 0 }, "1::1:1:1:0:0" },
	{ { 0x2001, 0xdb8, 0, 0, 1, 0, 0, 1 }, "2001:db8::1:0:0:1" },
	{ { 0x2001, 0xdb8, 0, 0, 0, 1, 0, 0 }, "2001:db8::1:0:0" },
	/* A single zero group is not compressed. */
	{ { 1, 0, 1, 1, 1, 1, 1, 1 }, "1:0:1:1:1:1:1:1" },
	{ { 0, 1, 1, 1, 1, 1, 1, 1 }, "0:1:1:1:1:1:1:1" },
	{ { 1, 1, 1, 1, 1, 1, 1, 0 }, "1:1:1:1:1:1:1:0" },
	{ { 0, 1, 0, 1, 0, 1, 0, 1 }, "0:1:0:1:0:1:0:1" },
	{ { 0, 0, 2, 3, 4, 5, 6, 7 }, "::2:3:4:5:6:7" },
	{ { 1, 2, 3, 4, 5, 6, 0, 0 }, "1:2:3:4:5:6::" },
	{ { 0xfe80, 0, 0, 0, 0, 0, 0, 1 }, "fe80::1" },
	{ { 0x2001, 0xdb8, 0, 0, 0, 0, 0, 0 }, "2001:db8::" },
	/* Hexadecimal: lowercase, no leading zeros, every width. */
	{ { 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff },
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
	{ { 0xf, 0xff, 0xfff, 0xffff, 0xa, 0xab, 0xabc, 0xabcd }, "f:ff:fff:ffff:a:ab:abc:abcd" },
	{ { 0x000a, 0x00a0, 0x0a00, 0xa000, 0x0010, 0x0100, 0x1000, 0x0001 },
	  "a:a0:a00:a000:10:100:1000:1" },
	{ { 1, 2, 3, 4, 5, 6, 7, 8 }, "1:2:3:4:5:6:7:8" },
};

#define N_IPV6_CASES ((int)(sizeof ipv6_cases / sizeof ipv6_cases[0]))

static const unsigned edge_ports[] = { 0, 1, 80, 9999, 10000, 65535 };
#define N_EDGE_PORTS (sizeof edge_ports / sizeof edge_ports[0])

START_TEST(test_ipv6_edge_cases)
{
	const struct ipv6_case *c = &ipv6_cases[_i];
	char d[64], why[256], expected[128];

	describe_groups(d, sizeof d, c->groups);
	for (size_t p = 0; p < N_EDGE_PORTS; p++) {
		struct sockaddr_storage ss = ipv6_address(c->groups, edge_ports[p]);

		reference_text(&ss, expected, sizeof expected);
		char claimed[128];
		snprintf(claimed, sizeof claimed, "[%s]:%u", c->glibc, edge_ports[p]);
		ck_assert_msg(strcmp(expected, claimed) == 0,
			      "%s: glibc writes %s, the table says %s", d, expected, claimed);
		if (mismatch(&ss, full_len(&ss), ADDRESS_TEXT_MAX, expected, why, sizeof why))
			ck_abort_msg("%s: %s", d, why);
	}
}
END_TEST

struct ipv4_case {
	unsigned char bytes[4];
	const char *glibc;
};

static const struct ipv4_case ipv4_cases[] = {
	{ { 0, 0, 0, 0 }, "0.0.0.0" },
	{ { 255, 255, 255, 255 }, "255.255.255.255" },
	{ { 127, 0, 0, 1 }, "127.0.0.1" },
	{ { 10, 0, 0, 1 }, "10.0.0.1" },
	{ { 9, 99, 100, 199 }, "9.99.100.199" },
	{ { 1, 22, 133, 4 }, "1.22.133.4" },
};

#define N_IPV4_CASES ((int)(sizeof ipv4_cases / sizeof ipv4_cases[0]))

START_TEST(test_ipv4_edge_cases)
{
	const struct ipv4_case *c = &ipv4_cases[_i];
	char why[256], expected[128];

	for (size_t p = 0; p < N_EDGE_PORTS; p++) {
		struct sockaddr_storage ss = ipv4_address(c->bytes, edge_ports[p]);

		reference_text(&ss, expected, sizeof expected);
		char claimed[128];
		snprintf(claimed, sizeof claimed, "%s:%u", c->glibc, edge_ports[p]);
		ck_assert_str_eq(expected, claimed);
		if (mismatch(&ss, full_len(&ss), ADDRESS_TEXT_MAX, expected, why, sizeof why))
			ck_abort_msg("%s: %s", c->glibc, why);
	}
}
END_TEST

/* The port is in network byte order; the scope and flow label are not shown
 * (inet_ntop has no place for them either). */
START_TEST(test_ipv6_ignores_scope_and_flow)
{
	static const uint16_t link_local[8] = { 0xfe80, 0, 0, 0, 0, 0, 0, 1 };
	struct sockaddr_storage ss = ipv6_address(link_local, 0x1234);
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	char out[ADDRESS_TEXT_MAX];

	in6->sin6_scope_id = 7;
	in6->sin6_flowinfo = htonl(0xabcde);
	ck_assert_uint_eq(format_socket_address(&ss, sizeof *in6, out, sizeof out),
			  strlen("[fe80::1]:4660"));
	ck_assert_str_eq(out, "[fe80::1]:4660");
}
END_TEST

/* ---------------------------------------------------------------- at random */

/* Zero with probability 1/2, so runs of every length and position occur;
 * otherwise 1 to 4 hex digits, or ffff to reach the IPv4-mapped form. */
static uint16_t random_group(void)
{
	uint64_t r = rng_next();

	if (r & 1)
		return 0;
	switch ((r >> 1) & 7) {
	case 0: return 0xffff;
	case 1: return (uint16_t)((r >> 8) & 0xf);
	case 2: return (uint16_t)((r >> 8) & 0xff);
	case 3: return (uint16_t)((r >> 8) & 0xfff);
	default: return (uint16_t)(r >> 16);
	}
}

START_TEST(test_random_ipv6)
{
	char d[64], why[256];
	int dotted = 0;

	rng_state = SEED;
	for (int n = 0; n < RANDOM_IPV6; n++) {
		uint16_t groups[8];
		for (int i = 0; i < 8; i++)
			groups[i] = random_group();
		struct sockaddr_storage ss = ipv6_address(groups, (unsigned)(rng_next() >> 48));

		if (differs_from_glibc(&ss, why, sizeof why)) {
			describe_groups(d, sizeof d, groups);
			ck_abort_msg("address %d (%s): %s", n, d, why);
		}
		char out[ADDRESS_TEXT_MAX];
		format_socket_address(&ss, full_len(&ss), out, sizeof out);
		dotted += strchr(out, '.') != NULL;
	}
	/* The generator reaches the IPv4-in-IPv6 forms too. */
	ck_assert_int_gt(dotted, 100);
}
END_TEST

START_TEST(test_random_ipv4)
{
	char why[256];

	rng_state = SEED ^ 4;
	for (int n = 0; n < RANDOM_IPV4; n++) {
		uint64_t r = rng_next();
		unsigned char bytes[4] = { (unsigned char)r, (unsigned char)(r >> 8),
					   (unsigned char)(r >> 16), (unsigned char)(r >> 24) };
		struct sockaddr_storage ss = ipv4_address(bytes, (unsigned)(r >> 48));

		if (differs_from_glibc(&ss, why, sizeof why))
			ck_abort_msg("address %d (%u.%u.%u.%u): %s", n, bytes[0],
				     bytes[1], bytes[2], bytes[3], why);
	}
}
END_TEST

/* ---------------------------------------------------------------- truncation */

/* Every out_len from 0 to past the end, on the longest texts and a few. */
START_TEST(test_truncation)
{
	static const uint16_t widest[8] = { 0xffff, 0xffff, 0xffff, 0xffff,
					    0xffff, 0xffff, 0xffff, 0xffff };
	static const uint16_t mapped[8] = { 0, 0, 0, 0, 0, 0xffff, 0xffff, 0xffff };
	static const uint16_t loopback[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	static const unsigned char broadcast[4] = { 255, 255, 255, 255 };
	static const unsigned char any[4] = { 0, 0, 0, 0 };
	struct sockaddr_storage addresses[] = {
		ipv6_address(widest, 65535),
		ipv6_address(mapped, 65535),
		ipv6_address(loopback, 0),
		ipv4_address(broadcast, 65535),
		ipv4_address(any, 0),
	};
	char expected[128], why[256];

	for (size_t a = 0; a < sizeof addresses / sizeof addresses[0]; a++) {
		reference_text(&addresses[a], expected, sizeof expected);
		ck_assert_uint_lt(strlen(expected), ADDRESS_TEXT_MAX);
		for (size_t out_len = 0; out_len <= ADDRESS_TEXT_MAX; out_len++)
			if (mismatch(&addresses[a], full_len(&addresses[a]), out_len,
				     expected, why, sizeof why))
				ck_abort_msg("%s: %s", expected, why);
	}
}
END_TEST

/* ---------------------------------------------------------------- no address */

START_TEST(test_other_families_give_nothing)
{
	static const sa_family_t families[] = { AF_UNSPEC, AF_UNIX, AF_PACKET, AF_NETLINK, 12345 };
	char why[256];

	for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
		struct sockaddr_storage ss;
		memset(&ss, 0x11, sizeof ss);
		ss.ss_family = families[f];
		if (mismatch(&ss, sizeof ss, ADDRESS_TEXT_MAX, "", why, sizeof why))
			ck_abort_msg("family %u: %s", (unsigned)families[f], why);
	}

	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_un *un = (struct sockaddr_un *)&ss;
	un->sun_family = AF_UNIX;
	strcpy(un->sun_path, "/tmp/socket");
	if (mismatch(&ss, sizeof *un, ADDRESS_TEXT_MAX, "", why, sizeof why))
		ck_abort_msg("AF_UNIX path: %s", why);
}
END_TEST

START_TEST(test_short_len_gives_nothing)
{
	static const uint16_t loopback6[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	static const unsigned char loopback4[4] = { 127, 0, 0, 1 };
	struct sockaddr_storage in = ipv4_address(loopback4, 80);
	struct sockaddr_storage in6 = ipv6_address(loopback6, 80);
	char why[256];

	for (socklen_t len = 0; len < sizeof(struct sockaddr_in); len++)
		if (mismatch(&in, len, ADDRESS_TEXT_MAX, "", why, sizeof why))
			ck_abort_msg("AF_INET len %u: %s", (unsigned)len, why);
	for (socklen_t len = 0; len < sizeof(struct sockaddr_in6); len++)
		if (mismatch(&in6, len, ADDRESS_TEXT_MAX, "", why, sizeof why))
			ck_abort_msg("AF_INET6 len %u: %s", (unsigned)len, why);
	/* Exactly long enough, and longer (sockaddr_storage), both work. */
	ck_assert_int_eq(mismatch(&in, sizeof(struct sockaddr_in), ADDRESS_TEXT_MAX,
				  "127.0.0.1:80", why, sizeof why), 0);
	ck_assert_int_eq(mismatch(&in, sizeof in, ADDRESS_TEXT_MAX,
				  "127.0.0.1:80", why, sizeof why), 0);
	ck_assert_int_eq(mismatch(&in6, sizeof(struct sockaddr_in6), ADDRESS_TEXT_MAX,
				  "[::1]:80", why, sizeof why), 0);
	ck_assert_int_eq(mismatch(&in6, sizeof in6, ADDRESS_TEXT_MAX,
				  "[::1]:80", why, sizeof why), 0);
}
END_TEST

static Suite *address_text_suite(void)
{
	Suite *s = suite_create("address_text");

	TCase *edges = tcase_create("edge_cases");
	tcase_add_loop_test(edges, test_ipv6_edge_cases, 0, N_IPV6_CASES);
	tcase_add_loop_test(edges, test_ipv4_edge_cases, 0, N_IPV4_CASES);
	tcase_add_test(edges, test_ipv6_ignores_scope_and_flow);
	suite_add_tcase(s, edges);

	TCase *random = tcase_create("random");
	tcase_add_test(random, test_random_ipv6);
	tcase_add_test(random, test_random_ipv4);
	/* 200000 addresses take seconds under the sanitizers; Check's own
	 * default is 4 s when run by hand. */
	tcase_set_timeout(random, 60);
	suite_add_tcase(s, random);

	TCase *limits = tcase_create("limits");
	tcase_add_test(limits, test_truncation);
	tcase_add_test(limits, test_other_families_give_nothing);
	tcase_add_test(limits, test_short_len_gives_nothing);
	suite_add_tcase(s, limits);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(address_text_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
