#!/bin/sh
# Prints the greeting for each argument, then where the image was built.
for who in "$@"; do
    echo "$GREETING, $who! (uid $(id -u), in $(pwd))"
done
cat /app/build-info.txt
