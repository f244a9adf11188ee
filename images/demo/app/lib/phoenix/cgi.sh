# Helpers for the demo's CGI scripts (sourced; busybox ash). busybox httpd turns a leading
# "Status:" header into the HTTP status line.
export PATH=/bin:/sbin
DATA_DIR=${PHOENIX_DATA_DIR:-/data}

# respond STATUS [BODY]: a text/plain answer; BODY gets a trailing newline.
respond() {
  printf 'Status: %s\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\r\n' "$1"
  if [ $# -gt 1 ]; then printf '%s\n' "$2"; fi
}

# query_param NAME: prints the URL-decoded value of NAME from QUERY_STRING (exactly, trailing
# newlines included); fails if NAME is absent.
query_param() {
  _qp_rest="$QUERY_STRING&"
  while [ -n "$_qp_rest" ]; do
    _qp_kv=${_qp_rest%%&*}
    _qp_rest=${_qp_rest#*&}
    case "$_qp_kv" in
      "$1="*)
        _qp_val=$(httpd -d "${_qp_kv#*=}" && echo .)
        printf '%s' "${_qp_val%.}"
        return 0
        ;;
    esac
  done
  return 1
}

# valid_name NAME: a plain file name inside DATA_DIR: no path separators, no "..", no leading dot
# (hides the write temp files and ".", ".."), a conservative character set, bounded length.
valid_name() {
  case "$1" in
    '' | .* | */* | *..* | *[!A-Za-z0-9._-]*) return 1 ;;
  esac
  [ "${#1}" -le 128 ]
}

# name_param: sets $name from the query or answers 400 and exits.
name_param() {
  if ! name=$(query_param name) || ! valid_name "$name"; then
    respond '400 Bad Request' 'invalid name: use 1-128 characters [A-Za-z0-9._-], no leading dot'
    exit 0
  fi
}
