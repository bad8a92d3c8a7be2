/* wstest.c: the Windows program of `make check-wine` (tests/wine/run-wine.sh),
 * built with mingw-w64 and run under Wine. Each case closes one TCP socket
 * whose other end is tests/wine/wine_peer, a native Linux program; a control
 * connection to the peer says how to connect and when the close happens:
 *   stall     an accepted socket, linger {1,2}, data the peer does not read;
 *             a watchdog thread times CreateEvent/CloseHandle round trips to
 *             wineserver meanwhile (Wine closes accepted sockets inside it)
 *   linger1   a connected socket, blocking, linger {1,1}, the peer not reading
 *   default   linger off, 64 KiB sent, the peer reading
 *   abort     linger {1,0}, 64 KiB sent
 *   shutdown  linger {1,0}, 64 KiB sent, shutdown(SD_SEND), then closesocket
 *             while the peer still reads nothing
 *   w1        non-blocking (FIONBIO), linger {1,2}, the peer not reading:
 *             Windows fails closesocket() with WSAEWOULDBLOCK
 * and, with no peer, `wstest.exe dontlinger`: what SO_LINGER reads after
 * SO_LINGER {1,5} and SO_DONTLINGER FALSE (Windows: {1,5}).
 * Usage: wstest.exe CASE CONTROL_PORT. Prints one line:
 *   case=... closesocket=RESULT error=WSAGetLastError took_ms=N max_stall_ms=N */
#include <winsock2.h>
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile LONG watching = 1;
static volatile LONG max_stall_ms;

static double now_ms(void)
{
	static LARGE_INTEGER frequency;
	LARGE_INTEGER t;
	if (frequency.QuadPart == 0)
		QueryPerformanceFrequency(&frequency);
	QueryPerformanceCounter(&t);
	return (double)t.QuadPart * 1000.0 / (double)frequency.QuadPart;
}

/* Each CreateEvent/CloseHandle pair is two wineserver requests. */
static DWORD WINAPI watchdog(LPVOID unused)
{
	(void)unused;
	while (watching) {
		double start = now_ms();
		HANDLE h = CreateEventA(NULL, FALSE, FALSE, NULL);
		CloseHandle(h);
		LONG took = (LONG)(now_ms() - start);
		if (took > max_stall_ms)
			max_stall_ms = took;
		Sleep(1);
	}
	return 0;
}

static void die(const char *what)
{
	printf("error: %s: %d\n", what, WSAGetLastError());
	exit(2);
}

static void say(SOCKET control, const char *line)
{
	if (send(control, line, (int)strlen(line), 0) != (int)strlen(line))
		die("send on the control connection");
}

static struct sockaddr_in loopback(unsigned short port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	return a;
}

/* Fills the send buffer: non-blocking sends until WSAEWOULDBLOCK, then
 * blocking again (the Windows mode the close sees). */
static void fill(SOCKET s)
{
	static char chunk[16384];
	u_long on = 1, off = 0;
	ioctlsocket(s, FIONBIO, &on);
	for (int i = 0; i < 100000; i++) {
		if (send(s, chunk, sizeof chunk, 0) == SOCKET_ERROR) {
			if (WSAGetLastError() == WSAEWOULDBLOCK)
				break;
			die("send while filling");
		}
	}
	ioctlsocket(s, FIONBIO, &off);
}

static void send_all(SOCKET s, int bytes)
{
	static char chunk[8192];
	for (int i = 0; i < (int)sizeof chunk; i++)
		chunk[i] = (char)(i * 31 + 7);
	while (bytes > 0) {
		int n = send(s, chunk, bytes < (int)sizeof chunk ? bytes : (int)sizeof chunk, 0);
		if (n == SOCKET_ERROR)
			die("send");
		bytes -= n;
	}
}

static void set_linger(SOCKET s, int on, int seconds)
{
	struct linger l = { (u_short)on, (u_short)seconds };
	if (setsockopt(s, SOL_SOCKET, SO_LINGER, (const char *)&l, sizeof l) != 0)
		die("SO_LINGER");
}

/* SO_DONTLINGER FALSE keeps l_linger on Windows. */
static int dontlinger(void)
{
	SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
	BOOL off = FALSE;
	struct linger l;
	int len = sizeof l;
	set_linger(s, 1, 5);
	if (setsockopt(s, SOL_SOCKET, SO_DONTLINGER, (const char *)&off, sizeof off) != 0 ||
	    getsockopt(s, SOL_SOCKET, SO_LINGER, (char *)&l, &len) != 0)
		die("SO_DONTLINGER");
	printf("case=dontlinger linger={%u,%u}\n", l.l_onoff, l.l_linger);
	closesocket(s);
	return 0;
}

int main(int argc, char **argv)
{
	WSADATA wsa;
	if (argc == 2 && strcmp(argv[1], "dontlinger") == 0 && WSAStartup(MAKEWORD(2, 2), &wsa) == 0)
		return dontlinger();
	if (argc != 3 || WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
		printf("usage: wstest.exe CASE CONTROL_PORT\n");
		return 2;
	}
	const char *which = argv[1];
	struct sockaddr_in peer = loopback((unsigned short)atoi(argv[2]));
	SOCKET control = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(control, (struct sockaddr *)&peer, sizeof peer) != 0)
		die("connect to the peer");
	SOCKET s;
	if (strcmp(which, "stall") == 0) {
		/* The peer connects to us: an accepted socket, never cached here. */
		SOCKET listener = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in any = loopback(0);
		int len = sizeof any;
		if (bind(listener, (struct sockaddr *)&any, sizeof any) != 0 || listen(listener, 1) != 0 ||
		    getsockname(listener, (struct sockaddr *)&any, &len) != 0)
			die("listen");
		char line[64];
		snprintf(line, sizeof line, "CONNECT %u\n", ntohs(any.sin_port));
		say(control, line);
		s = accept(listener, NULL, NULL);
		closesocket(listener);
	} else {
		say(control, "ACCEPT\n");
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(s, (struct sockaddr *)&peer, sizeof peer) != 0)
			die("connect the data connection");
	}
	if (s == INVALID_SOCKET)
		die("data connection");
	HANDLE dog = NULL;
	/* How long the peer reads nothing after the close: to the reset (at
	 * most 6 s), or, after a shutdown, long enough that data is still
	 * queued when the socket is closed. */
	const char *closing = "CLOSING READ\n";
	if (strcmp(which, "stall") == 0 || strcmp(which, "linger1") == 0 || strcmp(which, "w1") == 0)
		closing = "CLOSING HOLD 6000\n";
	else if (strcmp(which, "shutdown") == 0)
		closing = "CLOSING HOLD 500\n";
	if (strcmp(which, "stall") == 0) {
		fill(s);
		set_linger(s, 1, 2);
		dog = CreateThread(NULL, 0, watchdog, NULL, 0, NULL);
		Sleep(200);
	} else if (strcmp(which, "linger1") == 0) {
		fill(s);
		set_linger(s, 1, 1);
	} else if (strcmp(which, "w1") == 0) {
		fill(s);
		set_linger(s, 1, 2);
		u_long on = 1;
		ioctlsocket(s, FIONBIO, &on);
	} else if (strcmp(which, "default") == 0) {
		send_all(s, 65536);
	} else if (strcmp(which, "abort") == 0) {
		set_linger(s, 1, 0);
		send_all(s, 65536);
	} else if (strcmp(which, "shutdown") == 0) {
		set_linger(s, 1, 0);
		send_all(s, 65536);
		if (shutdown(s, SD_SEND) != 0)
			die("shutdown");
	} else {
		printf("unknown case %s\n", which);
		return 2;
	}
	say(control, closing);
	double start = now_ms();
	int rc = closesocket(s);
	int error = rc == 0 ? 0 : WSAGetLastError();
	double took = now_ms() - start;
	if (rc != 0)
		closesocket(s); /* WSAEWOULDBLOCK left it open: the peer still waits */
	if (dog != NULL) {
		Sleep(3000); /* the linger time and more */
		watching = 0;
		WaitForSingleObject(dog, INFINITE);
	}
	/* The peer says when it has seen the end of the stream. */
	char done[16];
	recv(control, done, sizeof done, 0);
	closesocket(control);
	printf("case=%s closesocket=%d error=%d took_ms=%.0f max_stall_ms=%ld\n", which, rc, error,
	       took, dog != NULL ? max_stall_ms : -1L);
	WSACleanup();
	return 0;
}
