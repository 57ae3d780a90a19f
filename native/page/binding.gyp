{
  "targets": [
    {
      "target_name": "walden_page",
      "sources": ["walden_page.c"],
      "cflags": ["-O3"]
    }
  ]
}
