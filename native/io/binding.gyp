{
  "targets": [
    {
      "target_name": "walden_io",
      "sources": ["walden_io.c"],
      "cflags": ["-O2"]
    }
  ]
}
