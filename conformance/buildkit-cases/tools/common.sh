# Helpers shared by run.sh (strata) and tools/make-oracles.sh (real BuildKit). Source, don't run.
# A case is cases/<name>/ with Dockerfile, ctx/, args, source and oracle.txt or expect-fail.

# bk_prep_ctx CASE_DIR DEST: copy the case's context to DEST with normalised permissions, so that a
# git checkout (which keeps only 644/755 and drops empty directories) gives the same bytes that
# BuildKit saw when the oracle was made: directories 0755, files 0755 if any x bit else 0644,
# directories listed in the optional CASE_DIR/mkdirs file are created, and the symbolic links
# listed in the optional CASE_DIR/symlinks file ("PATH<TAB>TARGET", PATH relative to ctx/) are
# made (this repository commits the links in ctx/ itself and has no such lists).
bk_prep_ctx() {
  local c=$1 dest=$2 d path target
  rm -rf "$dest"; mkdir -p "$dest"
  [[ -d $c/ctx ]] && cp -a "$c/ctx/." "$dest/"
  if [[ -f $c/mkdirs ]]; then
    while IFS= read -r d; do [[ -n $d && $d != \#* ]] && mkdir -p "$dest/$d"; done <"$c/mkdirs"
  fi
  if [[ -f $c/symlinks ]]; then
    while IFS=$'\t' read -r path target; do
      [[ -n $path && $path != \#* ]] || continue
      mkdir -p "$(dirname "$dest/$path")"; ln -sfn "$target" "$dest/$path"
    done <"$c/symlinks"
  fi
  find "$dest" -type d -exec chmod 0755 {} +
  find "$dest" -type f -perm /111 -exec chmod 0755 {} +
  find "$dest" -type f ! -perm /111 -exec chmod 0644 {} +
}

# bk_read_args CASE_DIR: fill the array BK_ARGS from CASE_DIR/args. One option per line:
# "--flag value" (split at the first space; the value may contain spaces), "--flag=value" or
# "--flag". Empty lines and lines starting with # are ignored.
bk_read_args() {
  local line
  BK_ARGS=()
  [[ -f $1/args ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    [[ -z $line || $line == \#* ]] && continue
    if [[ $line == --*' '* && ${line%%=*} == *' '* ]]; then
      BK_ARGS+=("${line%% *}" "${line#* }")
    else
      BK_ARGS+=("$line")
    fi
  done <"$1/args"
}

# bk_norm FILE: the layer count and bare mount-point
# directories (/dev /proc /sys /etc) that an executor leaves behind are not compared.
bk_norm() { grep -v -E '^layers |^d [0-7o]+ [0-9]+:[0-9]+ /(dev|proc|sys|etc)$' "$1"; }

# bk_fail_matches LOG REGEXFILE: an error case passes when the build failed, the regex (extended,
# case-insensitive) matches one of the output lines that report an error — lines that mention
# "error" or "fail", or that start with a FILE:LINE location — so that instruction text echoed by
# the progress output does not count, and nothing in the output says the feature is missing
# ("not implemented", "unimplemented", "not supported yet").
bk_fail_matches() {
  grep -Eiq 'not (yet )?implemented|unimplemented|not supported yet' "$1" && return 1
  grep -Ei 'error|fail|^[^ :]+:[0-9]+(:[0-9]+)?: ' "$1" | grep -Eiq -- "$(head -1 "$2")" || return 1
  # where the case has an expect-line file, the error must also name that Dockerfile line
  local lf=${2%/*}/expect-line n
  [[ -f $lf ]] || return 0
  n=$(head -1 "$lf")
  grep -Eiq "line $n\b|:$n:[0-9]+|:$n: " "$1"
}
