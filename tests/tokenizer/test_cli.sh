#!/bin/sh
# tests/tokenizer/test_cli.sh BAGEL QWEN2_DIR — `bagel tokenize` end to end: encode (ids of the
# golden und prompt), --segment, --decode back to the text, and a clean error on bad input.
set -eu
bagel=$1 model=$2
fail() { echo "test_cli: $*" >&2; exit 1; }

out=$(printf 'What is in this image? Describe it briefly.\n\nHello <|im_start|>world\n' | "$bagel" tokenize --model "$model")
want='3838 374 304 419 2168 30 60785 432 26753 13

9707 220 151644 14615'
[ "$out" = "$want" ] || fail "encode: got [$out]"

out=$(printf 'Make the yellow circle green.\n' | "$bagel" tokenize --model "$model" --segment)
[ "$out" = "151644 8078 279 13753 12671 6176 13 151645" ] || fail "segment: got [$out]"

out=$(printf '3838 374 304 419 2168 30\n151644 9707 151645\n' | "$bagel" tokenize --model "$model" --decode)
[ "$out" = "$(printf 'What is in this image?\n<|im_start|>Hello<|im_end|>')" ] || fail "decode: got [$out]"

err=$(mktemp)
trap 'rm -f "$err"' EXIT
if printf 'ok\n\377\n' | "$bagel" tokenize --model "$model" >/dev/null 2>"$err"; then
  fail "invalid UTF-8 accepted"
fi
grep -q "stdin line 2: text is not valid UTF-8 (byte offset 0" "$err" || fail "error: $(cat "$err")"
echo "test_cli: ok"
