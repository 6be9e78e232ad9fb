# Shared by the experiment drivers (sourced): the last JSON line of stdin, a python expression
# over it as j, printed.
#   echo "$json" | field 'j["reference"]["fdt_mean"]'
field() {
  /usr/bin/python3 -c 'import json,sys; j=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(eval(sys.argv[1]))' "$1"
}
