{
  "targets": [
    {
      "target_name": "sipalg",
      "sources": ["native/sipalg.c"],
      "libraries": ["-lnetfilter_queue"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
