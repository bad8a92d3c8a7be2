/* address_text.c: numbers and socket addresses as text (addresses the way
 * glibc's inet_ntop writes them), built by hand on the stack so close() can
 * trace from a signal handler. */
#include "address_text.h"

#include <netinet/in.h>
#include <stdbool.h>

/* Text under construction; the buffer has room for the longest address, so
 * the put_* helpers never check. */
struct text {
	char buf[ADDRESS_TEXT_MAX];
	size_t len;
};

static void put_char(struct text *t, char c)
{
	t->buf[t->len++] = c;
}

size_t format_decimal(char *out, uint64_t v)
{
	char reversed[20];
	size_t n = 0;

	do {
		reversed[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		out[i] = reversed[n - 1 - i];
	return n;
}

static void put_decimal(struct text *t, unsigned value)
{
	t->len += format_decimal(t->buf + t->len, value);
}

/* Lowercase, no leading zeros: 0 -> "0", 0x0db8 -> "db8". */
static void put_hex_group(struct text *t, unsigned group)
{
	static const char hex[] = "0123456789abcdef";
	int shift = 12;

	while (shift > 0 && (group >> shift) == 0)
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		put_char(t, hex[(group >> shift) & 0xf]);
}

static void put_ipv4(struct text *t, const unsigned char bytes[4])
{
	for (int i = 0; i < 4; i++) {
		if (i != 0)
			put_char(t, '.');
		put_decimal(t, bytes[i]);
	}
}

/* A run of zero groups; len 0 when there is none to compress. */
struct zero_run {
	int start;
	int len;
};

/* The run "::" replaces: the longest of two or more zero groups, the first
 * one on a tie. A single zero group stays "0" (RFC 5952 §4.2.2). */
static struct zero_run longest_zero_run(const unsigned groups[8])
{
	struct zero_run best = { 0, 0 };
	int i = 0;

	while (i < 8) {
		if (groups[i] != 0) {
			i++;
			continue;
		}
		int start = i;
		while (i < 8 && groups[i] == 0)
			i++;
		if (i - start > best.len) {
			best.start = start;
			best.len = i - start;
		}
	}
	if (best.len < 2)
		best.len = 0;
	return best;
}

static bool in_run(struct zero_run run, int i)
{
	return i >= run.start && i < run.start + run.len;
}

static void put_ipv6(struct text *t, const unsigned char bytes[16])
{
	unsigned groups[8];

	for (int i = 0; i < 8; i++)
		groups[i] = (unsigned)bytes[2 * i] << 8 | bytes[2 * i + 1];
	struct zero_run run = longest_zero_run(groups);

	/* glibc writes the last 32 bits as IPv4 for "::a.b.c.d" and
	 * "::ffff:a.b.c.d", but only when the zero run is exactly groups 0-5
	 * or 0-4: "::1" and "::ffff:0:a.b.c.d" stay hexadecimal. */
	bool ipv4_tail = run.start == 0 &&
			 (run.len == 6 || (run.len == 5 && groups[5] == 0xffff));
	int hex_groups = ipv4_tail ? 6 : 8;

	for (int i = 0; i < hex_groups; i++) {
		if (in_run(run, i)) {
			/* The run's first ':'; the next group brings the second. */
			if (i == run.start)
				put_char(t, ':');
			continue;
		}
		if (i != 0)
			put_char(t, ':');
		put_hex_group(t, groups[i]);
	}
	if (ipv4_tail) {
		put_char(t, ':');
		put_ipv4(t, bytes + 12);
	} else if (run.len > 0 && run.start + run.len == 8) {
		/* A trailing run has no next group to bring its second ':'. */
		put_char(t, ':');
	}
}

/* The text, cut to what fits with its NUL. */
static size_t copy_out(const struct text *t, char *out, size_t out_len)
{
	if (out_len == 0)
		return 0;
	size_t n = t->len < out_len - 1 ? t->len : out_len - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = t->buf[i];
	out[n] = '\0';
	return n;
}

size_t format_socket_address(const struct sockaddr_storage *sa, socklen_t len,
			     char *out, size_t out_len)
{
	struct text t = { .len = 0 };

	if (sa->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		put_ipv4(&t, (const unsigned char *)&in->sin_addr);
		put_char(&t, ':');
		put_decimal(&t, ntohs(in->sin_port));
	} else if (sa->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		put_char(&t, '[');
		put_ipv6(&t, in6->sin6_addr.s6_addr);
		put_char(&t, ']');
		put_char(&t, ':');
		put_decimal(&t, ntohs(in6->sin6_port));
	}
	return copy_out(&t, out, out_len);
}
