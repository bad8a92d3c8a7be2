/* strict_closefrom.c: a correct program for `wspclose --strict`: it closes
 * a few sockets, then, as a spawn helper does before exec, closefrom(3)
 * and close_range(3, ~0U, 0) over their numbers. Closing the range is not
 * a double close: --strict must exit 0. */
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	for (int i = 0; i < 4; i++) {
		int fd = socket(AF_INET, i % 2 ? SOCK_STREAM : SOCK_DGRAM, 0);
		if (fd < 0 || close(fd) != 0)
			return 10;
	}
	pid_t pid = fork();
	if (pid == 0) {
		closefrom(3);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, NULL, 0) != pid)
		return 11;
	return close_range(3, ~0U, 0) == 0 ? 0 : 12;
}
