# Sourced by ci_repro.sh, rehearsal.sh and compare_profiles.sh: a scratch copy of the repository's tracked files
# (data/ left out) as its own git repository, so `dvc repro` there never touches this checkout's params or
# artifacts. Usage: scratch_copy TAG DIR_OVERRIDE -> sets ROOT and WORK, cds into WORK, exports PYTHONPATH.
# PATH: the Makefile puts the venv first; nothing here activates it.
scratch_copy() {
  local tag=$1 dir=${2:-}
  ROOT=$(pwd)
  WORK=${dir:-$(mktemp -d "/tmp/clip2point-$tag.XXXXXX")}
  echo "[$tag] scratch copy: $WORK"
  git ls-files -z -- ':!data' | xargs -0 tar cf - | (cd "$WORK" && tar xf -)
  cd "$WORK"
  git init -q && git add -A >/dev/null && git -c user.email=ci@local -c user.name=ci commit -qm "$tag"
  export PYTHONPATH="$WORK"
}

# commit_params: record the scratch copy's params.yaml (written after the copy) so `dvc status` is judged on it
commit_params() {
  git add params.yaml && git -c user.email=ci@local -c user.name=ci commit -qm "$1 params"
}
