{
  "targets": [
    {
      "target_name": "walden_xxh3",
      "sources": ["walden_xxh3.c"],
      "cflags": ["-O2"],
      "libraries": ["-l:libxxhash.so.0"]
    }
  ]
}
