echo "serving with $(cat node_modules/prod.txt); dev tools: $(ls node_modules/dev.txt 2>/dev/null || echo none)"
