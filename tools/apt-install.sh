#!/usr/bin/env bash
# Usage: tools/apt-install.sh COMMAND[:PACKAGE]...
#
# Installs from Debian's packages each COMMAND that is not on PATH (PACKAGE names its package
# when it is not COMMAND), after one apt-get update; with sudo when not root. Exits non-zero,
# naming it, if a command is still missing afterwards. The one place the build installs system
# packages: `make tools-prometheus` and .ci/run call it.
set -euo pipefail

missing=()
packages=()
for arg in "$@"; do
	cmd="${arg%%:*}"
	pkg="${arg#*:}"
	if ! command -v "$cmd" >/dev/null 2>&1; then
		missing+=("$cmd")
		# Once each: promtool and prometheus come from one package.
		case " ${packages[*]} " in *" $pkg "*) ;; *) packages+=("$pkg") ;; esac
	fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

echo "${missing[*]} not found: installing Debian's ${packages[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"

for cmd in "${missing[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "$cmd still not found after installing its Debian package" >&2
		exit 1
	fi
done
