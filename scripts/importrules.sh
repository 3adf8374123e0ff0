#!/usr/bin/env bash
# The project's import rules (DESIGN.md, "Layout"), checked over `go list`. It prints each
# violation as `pkg -> imported (rule)` and fails when there is one.
#
#   scripts/importrules.sh
#
# LLMGATE_IMPORT_RULES_ALLOW holds violations that are known and being removed, as
# space-separated `pkg->imported` pairs (e.g. "admin->gateway"): they are printed but do not fail
# the check, and an allowance that nothing needs any more is reported so it can be dropped.
#
# Only the packages' own imports are checked, not their tests': a test may drive the code it
# tests through anything (a real gateway, a real store).
set -euo pipefail

cd "$(dirname "$0")/.."

# The rules. Package names are relative to the module and stand for the package and everything
# under it (store covers store/postgres). Reach:
#   deps    the package must not depend on the listed ones at all, directly or through another
#           package: a helper in between is the same coupling;
#   direct  its own import lines are checked (enough for cmd: any path to cmd/… goes through a
#           package that imports it directly, and that package is itself in "*").
# "Above" store is every package that builds on stored state or on the request path; store may
# use api/, the internal/ utilities (connlimit, redact, sse) and itself. Key hashes come to it
# already made (apikey stays above), and it publishes nothing on the change bus.
# internal/adminclient talks to the admin API over HTTP and shares only wire types (api/).
# A target outside the module is named by its full path (github.com/redis/go-redis): the request
# path keeps no Redis client of its own; it reaches Redis only through quota's limiter.
rules='
# from                   reach    must not import
admin                    deps     gateway
gateway                  direct   github.com/redis/go-redis
providers                deps     gateway store quota
quota                    deps     gateway providers
store                    deps     gateway admin providers quota billing audit apikey internal/changes internal/adminclient internal/bench
internal/adminclient     deps     gateway admin providers quota billing audit store apikey
*                        direct   cmd
'

module=$(go list -m)
# Listed first, so that a failing go list (an import cycle, a missing package) fails the check.
listing=$(go list -f '{{.ImportPath}}{{"\t"}}{{join .Imports " "}}{{"\t"}}{{join .Deps " "}}' ./...)
declare -A imports deps
pkgs=()
while IFS=$'\t' read -r pkg imp dep; do
	pkg=${pkg#"$module"/}
	pkgs+=("$pkg")
	imports[$pkg]=" $imp "
	deps[$pkg]=" $dep "
done <<<"$listing"

# under NAME PKG: is PKG (module-relative) NAME or below it?
under() { [ "$2" = "$1" ] || [[ $2 == "$1"/* ]]; }

# via PKG DEP: the direct import of PKG through which it reaches DEP (full import paths in the
# maps; DEP module-relative).
via() {
	local d
	for d in ${imports[$1]}; do
		d=${d#"$module"/}
		if [ "$d" = "$2" ]; then
			return
		fi
	done
	for d in ${imports[$1]}; do
		[[ $d == "$module"/* ]] || continue
		d=${d#"$module"/}
		if [[ ${deps[$d]-} == *" $module/$2 "* ]]; then
			echo "; via $d"
			return
		fi
	done
}

allowed=" ${LLMGATE_IMPORT_RULES_ALLOW:-} "
used=" "
failed=0
while read -r from reach targets; do
	[ -z "$from" ] || [[ $from == \#* ]] && continue
	for pkg in "${pkgs[@]}"; do
		if [ "$from" = "*" ]; then
			under cmd "$pkg" && continue # a binary may have packages of its own
		else
			under "$from" "$pkg" || continue
		fi
		if [ "$reach" = direct ]; then list=${imports[$pkg]}; verb=import; else list=${deps[$pkg]}; verb=reach; fi
		for imp in $list; do
			if [[ $imp == "$module"/* ]]; then
				imp=${imp#"$module"/}
			elif [[ $imp != *.*/* ]]; then
				continue # the standard library
			fi
			for t in $targets; do
				under "$t" "$imp" || continue
				rule="$from must not $verb $t"
				[ "$from" = "*" ] && rule="nothing may import $t/…"
				[ "$reach" = deps ] && rule+=$(via "$pkg" "$imp")
				if [[ $allowed == *" $pkg->$imp "* ]]; then
					echo "importrules: allowed for now: $pkg -> $imp ($rule)"
					used+="$pkg->$imp "
				else
					echo "$pkg -> $imp ($rule)"
					failed=1
				fi
			done
		done
	done
done <<<"$rules"

for a in ${LLMGATE_IMPORT_RULES_ALLOW:-}; do
	if [[ $used != *" $a "* ]]; then
		echo "importrules: $a is allowed but no longer happens: drop it from LLMGATE_IMPORT_RULES_ALLOW"
	fi
done
if [ "$failed" = 1 ]; then
	echo "importrules: the imports above break the rules in scripts/importrules.sh (DESIGN.md, section Layout)" >&2
	exit 1
fi
