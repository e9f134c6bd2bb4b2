#!/usr/bin/env bash
# Regenerates the committed Kubernetes examples under deploy/kubernetes/ with `morph export`, from the signer sample's
# function.yaml and fixed placeholder values (image digests, KMS URL, KMS TLS CA pin), so that the files change only
# when the exporter does. DeployFolderTests runs this script into a temporary directory and compares the result with
# the committed files byte for byte: after changing src/Morphisms.Deploy, run it and commit what it wrote.
#
#   bash deploy/regenerate.sh            rewrites deploy/kubernetes/ (builds morph with `dotnet run` first)
#   bash deploy/regenerate.sh DIR        writes into DIR instead
#   MORPH=/path/to/morph bash deploy/regenerate.sh
#                                        runs that morph executable instead of `dotnet run` (the tests do)
#
# The placeholders are not real: a deployment exports its own with its image digests and its KMS's pin
# (deploy/README.md says how).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/deploy/kubernetes}"

morph() {
  if [[ -n "${MORPH:-}" ]]; then
    "$MORPH" "$@"
  else
    dotnet run --project "$root/src/Morphisms.Cli" -- "$@"
  fi
}

# Fixed placeholders. The KMS URL is https, as `morph export knative` requires; the pin is the SHA-256 of the CA that
# issued the KMS's TLS certificate, never the KMS PKI root (docs/operations.md).
kms_url="https://kms.example.internal:8200"
kms_ca_sha256="4444444444444444444444444444444444444444444444444444444444444444"
signer_image="registry.example.internal/morphisms/signer@sha256:1111111111111111111111111111111111111111111111111111111111111111"
kms_image="registry.example.internal/morphisms/morph@sha256:2222222222222222222222222222222222222222222222222222222222222222"
queue_proxy_image="registry.example.internal/knative/queue@sha256:3333333333333333333333333333333333333333333333333333333333333333"
namespace="morphisms"

# The export reads only function.yaml and checks that its bundle directory exists (it is not part of the output). A copy
# with an empty bundle keeps the examples independent of whether `bash samples/build.sh` has run.
spec="$(mktemp -d)"
trap 'rm -rf "$spec"' EXIT
cp "$root/samples/signer/function.yaml" "$spec/"
mkdir "$spec/publish"

# Only the directories this script writes are replaced, so a stale file from an earlier exporter cannot linger.
mkdir -p "$out"
for dir in kms-snp signer-snp signer-tdx signer-sgx; do
  rm -rf "${out:?}/$dir"
done

# Each export's stdout is "wrote PATH" lines (absolute paths, not kept) and then, indented, what to register or pin:
# measured.txt keeps those.
export_to() {
  local dir="$1"
  shift
  mkdir "$out/$dir"
  morph export "$@" --output "$out/$dir" | sed -n 's/^  //p' >"$out/$dir/measured.txt"
}

export_to kms-snp kms --tee snp --image "$kms_image" --namespace "$namespace"
for tee in snp tdx; do
  export_to "signer-$tee" knative "$spec" --tee "$tee" --kms "$kms_url" --kms-ca-sha256 "$kms_ca_sha256" \
    --image "$signer_image" --queue-proxy-image "$queue_proxy_image" --namespace "$namespace"
done
export_to signer-sgx knative "$spec" --tee sgx --kms "$kms_url" --kms-ca-sha256 "$kms_ca_sha256" \
  --image "$signer_image" --namespace "$namespace"
echo "regenerated $out"
