#!/bin/sh
echo "href-counter VERSION"
