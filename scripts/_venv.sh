# Sourced by scripts/dev and scripts/test: create .venv once, reinstall only when the
# requirements file changes, and put the venv first on PATH.
req="$1"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
stamp=".venv/.installed-$(basename "$req")"
digest=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$digest" ]]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$req"
  echo "$digest" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
export VIRTUAL_ENV="$PWD/.venv"
