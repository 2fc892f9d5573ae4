{
  "targets": [
    {
      "target_name": "roost_schnorr",
      "sources": ["schnorr.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-lsecp256k1"]
    }
  ]
}
