#!/bin/sh
echo "hello from a kiln-built image (built by ${BUILT_BY:-someone})"
