# tests/bench/bench_lib.sh: shell functions the churn benchmarks share
# (sourced by bench_trace_cost.sh, bench_teardown.sh and bench_nginx.sh).

# CPU seconds (user + system) of the children of a shell, from the second
# line of its times builtin's output in FILE ("0m1.250000s 0m0.500000s").
children_cpu() {
	awk 'NR == 2 {
		total = 0
		for (i = 1; i <= 2; i++) {
			split($i, part, "m")
			sub("s", "", part[2])
			total += part[1] * 60 + part[2]
		}
		printf "%.6f\n", total
	}' "$1"
}

# The median of the numbers on stdin, one per line (0 when there are none).
median_of_lines() {
	sort -n | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print 0; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
