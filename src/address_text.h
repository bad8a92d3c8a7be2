/* address_text.h: numbers and socket addresses as trace text (addresses byte
 * for byte what glibc's inet_ntop writes), async-signal-safe: the close path
 * may run in a signal handler. */
#ifndef WSPCLOSE_ADDRESS_TEXT_H
#define WSPCLOSE_ADDRESS_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Writes v in decimal to out (room for its digits: 20 for any value; no
 * terminating NUL) and returns the length. */
size_t format_decimal(char *out, uint64_t v);

/* Room for the longest text, with its NUL (INET6_ADDRSTRLEN's worst case,
 * bracketed, and a port). */
#define ADDRESS_TEXT_MAX (sizeof "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535")

/* Writes "1.2.3.4:80" or "[::1]:80" for an AF_INET/AF_INET6 address of `len`
 * bytes into out (NUL-terminated, truncated to out_len - 1; nothing at all
 * when out_len is 0); "" for any other family or a too-short len.
 * Async-signal-safe: no stdio, no malloc, no locale, errno untouched.
 * Returns the length written. */
size_t format_socket_address(const struct sockaddr_storage *sa, socklen_t len,
			     char *out, size_t out_len);

#endif
