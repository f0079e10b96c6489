# An example bake file for bake-indexed-job.yaml: three images built from one repository
# (put it at the repository's top). `strata bake --index N` builds the N-th target of the
# default group (0-based), so the Job's completions and parallelism are its length (3).
#
# The registry cache is shared: each target writes its own tag of one cache repository
# (parallel writers of a single ref would overwrite each other's cache manifest) and reads
# all three, so a stage that several Dockerfiles share is built once.

variable "REGISTRY" {
  default = "registry.example.com/team"
}

variable "TAG" {
  default = "latest"
}

group "default" {
  targets = ["api", "worker", "web"]
}

target "_common" {
  context = "."
  cache-from = [
    "type=registry,ref=${REGISTRY}/cache:api",
    "type=registry,ref=${REGISTRY}/cache:worker",
    "type=registry,ref=${REGISTRY}/cache:web",
  ]
  labels = {
    "org.opencontainers.image.source" = "https://git.example.com/team/app"
  }
}

target "api" {
  inherits   = ["_common"]
  dockerfile = "services/api/Dockerfile"
  tags       = ["${REGISTRY}/api:${TAG}"]
  cache-to   = ["type=registry,ref=${REGISTRY}/cache:api,mode=max"]
}

target "worker" {
  inherits   = ["_common"]
  dockerfile = "services/worker/Dockerfile"
  tags       = ["${REGISTRY}/worker:${TAG}"]
  cache-to   = ["type=registry,ref=${REGISTRY}/cache:worker,mode=max"]
}

target "web" {
  inherits   = ["_common"]
  dockerfile = "services/web/Dockerfile"
  target     = "production"
  args = {
    NODE_ENV = "production"
  }
  tags     = ["${REGISTRY}/web:${TAG}"]
  cache-to = ["type=registry,ref=${REGISTRY}/cache:web,mode=max"]
}
