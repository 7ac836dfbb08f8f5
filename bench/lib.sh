# Shared by the benchmarks: source it after setting dir (a scratch
# directory), pgbench, transactions and dsn.

# medians ROLE_A STATEMENT_A ROLE_B STATEMENT_B CLAIMS [SETTINGS]: the
# median latency (µs) of each side's transaction
#   begin; select set_config(claims), set_config(role)[, SETTINGS]; STATEMENT; commit
# The two sides run interleaved at random in one pgbench run on one
# connection, so both meet the same machine (on two cores, where the
# scheduler puts client and backend moves a round trip by 100 µs).
# PROTOCOL=prepared sends each statement as a prepared statement (what
# PostgREST does by default: planned once per connection, as a generic
# plan when that is cheaper); the default is the simple protocol (every
# statement planned again).
medians() {
  for side in a b; do
    if [ "$side" = a ]; then role=$1 stmt=$2; else role=$3 stmt=$4; fi
    cat > "$dir/$side.sql" <<SQL
begin;
select set_config('request.jwt.claims', '$5', true), set_config('role', '$role', true)${6:+, $6};
$stmt;
commit;
SQL
  done
  rm -f "$dir"/log*
  (cd "$dir" && "$pgbench" -n -c 1 -M "${PROTOCOL:-simple}" -t "$((2 * transactions))" -l --log-prefix="$dir/log" \
     -f "$dir/a.sql@1" -f "$dir/b.sql@1" "$dsn" >/dev/null)
  for script in 0 1; do
    awk -v s="$script" '$4 == s {print $3}' "$dir"/log* | sort -n | awk '{a[NR] = $1} END {printf "%s ", a[int((NR + 1) / 2)]}'
  done
  echo
}

# percentiles: like medians, with each side's 95th percentile too:
# "A_p50 A_p95 B_p50 B_p95" (µs).
percentiles() {
  medians "$@" >/dev/null
  for script in 0 1; do
    awk -v s="$script" '$4 == s {print $3}' "$dir"/log* | sort -n |
      awk '{a[NR] = $1} END {printf "%s %s ", a[int((NR + 1) / 2)], a[int(NR * 0.95 + 0.999)]}'
  done
  echo
}
