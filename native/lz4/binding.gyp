{
  "targets": [
    {
      "target_name": "walden_lz4",
      "sources": ["walden_lz4.c"],
      "cflags": ["-O2"],
      "libraries": ["-l:liblz4.so.1"]
    }
  ]
}
