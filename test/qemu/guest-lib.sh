# Helpers for guest scenarios (sourced inside the VM). Output is structured so host-side
# tests can parse it: a scenario's output sits between "KMM-BEGIN <name>" and
# "KMM-END <name>", and every command run with `run` is followed by "KMM-RC <exit code>".

begin() { echo "KMM-BEGIN $1"; }
end() { echo "KMM-END $1"; }

# run CMD...: runs it with stderr merged, then prints its exit code.
run() {
  "$@" 2>&1
  echo "KMM-RC $?"
}

# show FILE...: prints "FILE=<content>" for each (or FILE=<missing>).
show() {
  for f in "$@"; do
    if [ -e "$f" ]; then echo "$f=$(cat "$f" 2>&1)"; else echo "$f=<missing>"; fi
  done
}

# loaded: the names of loaded modules on one line, sorted.
loaded() { echo "loaded: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"; }

# wait_for_file FILE SECONDS: waits until FILE exists.
wait_for_file() {
  i=0
  while [ ! -e "$1" ] && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  [ -e "$1" ]
}

# wait_for_line FILE TEXT SECONDS: waits until FILE has a line containing TEXT.
wait_for_line() {
  i=0
  while ! grep -q -F "$2" "$1" 2>/dev/null && [ $i -lt $(($3 * 10)) ]; do
    sleep 0.1
    i=$((i + 1))
  done
  grep -q -F "$2" "$1" 2>/dev/null
}
