{
  "targets": [
    {
      "target_name": "walden_cipher",
      "sources": ["walden_cipher.c"],
      "cflags": ["-O2"],
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
