{
  "targets": [
    {
      "target_name": "walden_bz2",
      "sources": ["walden_bz2.c"],
      "cflags": ["-O2"],
      "libraries": ["-l:libbz2.so.1.0"]
    }
  ]
}
