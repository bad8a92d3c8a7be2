/* sim_deadline_heap.c: the reaper's own data structures (src/deadline_heap.c, linked in,
 * and the fd table's entries) driven to 1,000,000 entries, past this machine's fd limit. */
#include "bench_scale_util.h"
#include "deadline_heap.h"
#include "fd_table.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define PROG "sim_deadline_heap"
#define MAX_SIZES 16
#define BATCH 1000            /* operations timed together */
#define MIN_OPS 200000        /* per kind of operation and size */
#define GRACE_NS 60000000000LL

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* The reaper's callback, writing into the fd table as the library does. */
static void placed(int fd, uint32_t index, void *context)
{
	struct fd_entry *table = context;

	table[fd].held.heap_index = index;
}

/* What is in the heap: fds, to pick one at random and drop it in O(1). */
struct members {
	int *fd;
	uint32_t *slot;            /* slot[fd]: position in fd[] */
	size_t count;
};

static void members_add(struct members *m, int fd)
{
	m->slot[fd] = (uint32_t)m->count;
	m->fd[m->count++] = fd;
}

static int members_take_random(struct members *m)
{
	size_t i = (size_t)(rng() % m->count);
	int fd = m->fd[i], last = m->fd[--m->count];

	m->fd[i] = last;
	m->slot[last] = (uint32_t)i;
	return fd;
}

struct sim {
	size_t n;
	struct fd_entry *table;
	struct deadline_heap heap;
	struct members in;         /* fds in the heap */
	int64_t clock;             /* simulated now, ns */
};

static bool heap_is_sound(const struct sim *s)
{
	for (size_t i = 0; i < s->heap.len; i++) {
		const struct deadline_item *it = &s->heap.items[i];

		if (s->table[it->fd].held.heap_index != i)
			return false;
		if (i > 0 && s->heap.items[(i - 1) / 2].deadline_ns > it->deadline_ns)
			return false;
	}
	return true;
}

enum op {
	OP_PUSH_GRACE,     /* a hand-off: deadline now + grace (ascending: the common case) */
	OP_PUSH_RANDOM,    /* a hand-off with a random deadline (mixed linger/grace) */
	OP_REMOVE_RANDOM,  /* a release on FIN ack: removal from anywhere */
	OP_REMOVE_FIRST,   /* a deadline expiry: removal of the earliest */
	OP_FIRST,          /* the reaper's timeout computation: the earliest */
	OPS
};

static const char *const op_name[OPS] = {
	"push (now+grace)", "push (random)", "remove (any)", "remove (first)", "first",
};

/* Puts removed fds back, with fresh (now + grace) deadlines. Untimed. */
static void refill(struct sim *s, const int *fds, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		deadline_heap_push(&s->heap, fds[i], (s->clock += 1000) + GRACE_NS);
		members_add(&s->in, fds[i]);
	}
}

/* Median ns per operation of `op`, at a steady size n: each timed batch of
 * removals is followed by an untimed batch of pushes, and vice versa, so the
 * heap stays at n (less one batch) entries. */
static double measure(struct sim *s, enum op op)
{
	size_t batches = (MIN_OPS + BATCH - 1) / BATCH, count = 0;
	double *per_batch = calloc(batches, sizeof *per_batch);
	volatile int64_t sink = 0;
	int chosen[BATCH];

	if (!per_batch)
		fatal(PROG, "calloc");
	for (size_t b = 0; b < batches; b++) {
		size_t k = BATCH < s->n / 2 ? BATCH : s->n / 2;
		uint64_t t0, t1;

		if (k == 0)
			k = 1;
		if (op == OP_PUSH_GRACE || op == OP_PUSH_RANDOM) {
			int64_t deadlines[BATCH];

			/* Make room and choose, untimed; then time the pushes alone. */
			for (size_t i = 0; i < k; i++) {
				chosen[i] = members_take_random(&s->in);
				deadline_heap_remove(&s->heap, s->table[chosen[i]].held.heap_index);
				deadlines[i] = op == OP_PUSH_GRACE
					       ? (s->clock += 1000) + GRACE_NS
					       : s->clock + (int64_t)(rng() % (uint64_t)GRACE_NS);
			}
			t0 = mono_ns();
			for (size_t i = 0; i < k; i++)
				deadline_heap_push(&s->heap, chosen[i], deadlines[i]);
			t1 = mono_ns();
			for (size_t i = 0; i < k; i++)
				members_add(&s->in, chosen[i]);
		} else if (op == OP_REMOVE_RANDOM) {
			/* Choose k distinct members untimed; time the removals alone. */
			for (size_t i = 0; i < k; i++)
				chosen[i] = members_take_random(&s->in);
			t0 = mono_ns();
			for (size_t i = 0; i < k; i++)
				deadline_heap_remove(&s->heap, s->table[chosen[i]].held.heap_index);
			t1 = mono_ns();
			refill(s, chosen, k);
		} else if (op == OP_REMOVE_FIRST) {
			t0 = mono_ns();
			for (size_t i = 0; i < k; i++) {
				chosen[i] = deadline_heap_first(&s->heap)->fd;
				deadline_heap_remove(&s->heap, 0);
			}
			t1 = mono_ns();
			for (size_t i = 0; i < k; i++) {
				uint32_t at = s->in.slot[chosen[i]];
				int last = s->in.fd[--s->in.count];

				s->in.fd[at] = last;
				s->in.slot[last] = at;
			}
			refill(s, chosen, k);
		} else {
			t0 = mono_ns();
			for (size_t i = 0; i < k; i++)
				sink += deadline_heap_first(&s->heap)->deadline_ns;
			t1 = mono_ns();
		}
		per_batch[count++] = (double)(t1 - t0) / (double)k;
	}
	(void)sink;
	{
		double m = median_of(per_batch, count);

		free(per_batch);
		return m;
	}
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: " PROG " [--sizes N1,N2,...]\n"
		"  Fills the reaper's deadline heap (src/deadline_heap.c) and fd-table entries to\n"
		"  each size, then times each operation at that steady size (median of batches of\n"
		"  %d). default sizes: 1000,10000,100000,1000000\n", BATCH);
}

/* The library's user memory per held socket: the copy's table entry, its
 * deadline, and its two settle-queue slots (src/settle_queue.c). */
static size_t held_bytes(void)
{
	return sizeof(struct fd_entry) + sizeof(struct deadline_item) + 2 * sizeof(uint64_t);
}

int main(int argc, char **argv)
{
	long sizes[MAX_SIZES] = { 1000, 10000, 100000, 1000000 };
	size_t n_sizes = 4;
	double results[MAX_SIZES][OPS], fill_ns[MAX_SIZES], rss_table[MAX_SIZES],
		rss_heap[MAX_SIZES];
	bool sound = true;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
			n_sizes = parse_list(PROG, "--sizes", argv[++i], 2, 16777216, sizes, MAX_SIZES);
			continue;
		}
		usage(stderr);
		return 2;
	}

	printf("== simulation of the reaper's data structures (src/deadline_heap.c linked in) ==\n");
	print_machine("   ");
	/* si == -1: a warm-up round at the first size, not reported (first
	 * touches of stdio, the allocator and the code itself). */
	for (ptrdiff_t si = -1; si < (ptrdiff_t)n_sizes; si++) {
		struct sim s = { .n = (size_t)sizes[si < 0 ? 0 : si] };
		double ops[OPS];
		size_t table_bytes = s.n * sizeof(struct fd_entry);
		long rss0, rss1, rss2;
		double fill, heap_rss;
		uint64_t t0;

		rss0 = vmrss_kib();
		/* As fd_table_init() does: reserved, touched only where used. */
		s.table = mmap(NULL, table_bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (s.table == MAP_FAILED)
			fatal(PROG, "mmap");
		for (size_t fd = 0; fd < s.n; fd++)
			atomic_store_explicit(&s.table[fd].state, FD_KIND_TCP | FD_LIBRARY_OWNED | FD_HELD,
					      memory_order_relaxed);
		rss1 = vmrss_kib();
		if (!deadline_heap_init(&s.heap, s.n, placed, s.table))
			fatal(PROG, "deadline_heap_init");
		s.in.fd = calloc(s.n, sizeof *s.in.fd);
		s.in.slot = calloc(s.n, sizeof *s.in.slot);
		if (!s.in.fd || !s.in.slot)
			fatal(PROG, "calloc");
		/* The helper arrays are the simulation's, not the library's: touch
		 * them now (not with zeros, which the compiler may elide after
		 * calloc) so that the heap's RSS is measured alone. */
		memset(s.in.fd, 0xff, s.n * sizeof *s.in.fd);
		memset(s.in.slot, 0xff, s.n * sizeof *s.in.slot);
		{
			long before_heap = vmrss_kib();

			t0 = mono_ns();
			for (size_t fd = 0; fd < s.n; fd++) {
				deadline_heap_push(&s.heap, (int)fd, (s.clock += 1000) + GRACE_NS);
				members_add(&s.in, (int)fd);
			}
			fill = (double)(mono_ns() - t0) / (double)s.n;
			rss2 = vmrss_kib();
			heap_rss = (double)(rss2 - before_heap) * 1024.0 / (double)s.n;
		}
		for (int op = 0; op < OPS; op++)
			ops[op] = measure(&s, (enum op)op);
		if (si >= 0) {
			fill_ns[si] = fill;
			rss_heap[si] = heap_rss;
			rss_table[si] = (double)(rss1 - rss0) * 1024.0 / (double)s.n;
			memcpy(results[si], ops, sizeof ops);
		}
		if (!heap_is_sound(&s) || s.heap.len != s.n) {
			fprintf(stderr, PROG ": heap invariant broken at n=%zu\n", s.n);
			sound = false;
		}
		deadline_heap_free(&s.heap);
		munmap(s.table, table_bytes);
		free(s.in.fd);
		free(s.in.slot);
	}

	printf("\n   Deadline heap: ns per operation at a steady size (median of batches of %d;"
	       " fill = pushing 0..n)\n", BATCH);
	printf("   %9s %7s", "entries", "log2 n");
	printf(" %9s", "fill");
	for (int op = 0; op < OPS; op++)
		printf(" %17s", op_name[op]);
	printf("\n");
	for (size_t si = 0; si < n_sizes; si++) {
		printf("   %9ld %7.1f %9.1f", sizes[si], log2((double)sizes[si]), fill_ns[si]);
		for (int op = 0; op < OPS; op++)
			printf(" %17.1f", results[si][op]);
		printf("\n");
	}
	printf("   per log2(n), remove (any): ");
	for (size_t si = 0; si < n_sizes; si++)
		printf("%s%.1f", si ? ", " : "", results[si][OP_REMOVE_RANDOM] / log2((double)sizes[si]));
	printf(" ns\n");

	printf("\n   Memory (bytes per entry; RSS measured while the simulation filled them)\n");
	printf("   %9s %16s %16s %18s %18s\n", "entries", "fd table RSS/e", "heap RSS/e",
	       "fd table total", "heap total");
	for (size_t si = 0; si < n_sizes; si++)
		printf("   %9ld %16.1f %16.1f %15.1f MiB %15.1f MiB\n", sizes[si], rss_table[si],
		       rss_heap[si],
		       (double)sizes[si] * (double)sizeof(struct fd_entry) / 1048576.0,
		       (double)sizes[si] * (double)sizeof(struct deadline_item) / 1048576.0);
	printf("   computed: sizeof(struct fd_entry) = %zu, sizeof(struct deadline_item) = %zu,"
	       " two settle-queue tokens %zu:\n   %zu bytes per held socket.\n",
	       sizeof(struct fd_entry), sizeof(struct deadline_item), 2 * sizeof(uint64_t),
	       held_bytes());
	printf("   The library maps its fd table once for min(hard RLIMIT_NOFILE, 2^20) entries"
	       " (%.1f MiB of\n   address space at 2^20) with MAP_NORESERVE: only pages of"
	       " descriptor numbers in use become resident.\n   The heap is calloc'ed for"
	       " WSPCLOSE_MAX_HELD items once; its pages become resident as it fills.\n",
	       (double)(1u << 20) * (double)sizeof(struct fd_entry) / 1048576.0);
	printf("RESULT sim largest=%ld remove_any_ns=%.1f push_grace_ns=%.1f first_ns=%.1f"
	       " bytes_per_held=%zu heap_sound=%s\n", sizes[n_sizes - 1],
	       results[n_sizes - 1][OP_REMOVE_RANDOM], results[n_sizes - 1][OP_PUSH_GRACE],
	       results[n_sizes - 1][OP_FIRST],
	       held_bytes(), sound ? "yes" : "NO");
	return sound ? 0 : 1;
}
