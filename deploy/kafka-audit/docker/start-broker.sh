#!/usr/bin/env bash
# Starts the microcred broker from a complete server.properties (Compose mounts it; ADR 21):
# formats the storage on first start, creating the bootstrap super user's SCRAM credential
# (`admin`, password from the file MICROCRED_KAFKA_ADMIN_PASSWORD_FILE) that kafka-init uses
# to create the services' users and ACLs, then runs the broker in the foreground (PID 1).
set -euo pipefail

config="${MICROCRED_KAFKA_CONFIG:-/etc/microcred/kafka/server.properties}"
password_file="${MICROCRED_KAFKA_ADMIN_PASSWORD_FILE:-/run/secrets/kafka_admin_password}"
: "${CLUSTER_ID:?set CLUSTER_ID (22 characters of base64url)}"

data_dir="$(sed -n 's/^log\.dirs=//p' "$config" | cut -d, -f1)"
if [ ! -f "$data_dir/meta.properties" ]; then
  if [ ! -s "$password_file" ]; then
    echo "start-broker: $password_file is missing or empty" >&2
    exit 1
  fi
  password="$(tr -d '\r\n' < "$password_file")"
  case "$password" in
    *[,=\[\]]*) echo "start-broker: the admin password may not contain , = [ ]" >&2; exit 1;;
  esac
  /opt/kafka/bin/kafka-storage.sh format --cluster-id="$CLUSTER_ID" --config "$config" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$password]"
fi

export KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=/opt/microcred/log4j2.xml"
exec /opt/kafka/bin/kafka-server-start.sh "$config"
