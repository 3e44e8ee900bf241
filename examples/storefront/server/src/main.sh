echo "AtSea server starting with $* (static: $(ls /static | tr '\n' ' '))"
