#!/usr/bin/env bash
# The campaign's full runs (issue 10); the test suite runs a fast subset of each.
#
#   scripts/campaign.sh corrupt [N]   N random corruptions of real bundles of every
#                                     source type (default 10000): all refused,
#                                     nothing applied, the served generation unchanged
#   scripts/campaign.sh kill [N]      N kill -9 trials during import, diode receive
#                                     and QUIC listen (default 200): no torn store,
#                                     the next run finishes the job
#   scripts/campaign.sh size          the delta-size test on a 1 GiB tree (the suite
#                                     runs it on 256 MiB)
#
# CAMPAIGN_SEED=S repeats a run (every run prints its seed). Figures go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-}
case "$what" in
corrupt)
    export CAMPAIGN_CORRUPTIONS=${2:-10000}
    test=full_corruption_campaign
    ;;
kill)
    export CAMPAIGN_KILLS=${2:-200}
    test=full_kill_campaign
    ;;
size)
    export FERRY_DELTA_SIZE_FULL=1
    cargo build --bins -p agent-inside -p agent-outside
    exec cargo test -p ferry-e2e --test e2e -- --exact \
        delta_size::one_mib_changed_in_a_large_tree_ships_a_few_mib --nocapture
    ;;
*)
    echo "usage: $0 corrupt [N] | kill [N] | size" >&2
    exit 2
    ;;
esac

cargo build --bins -p agent-inside -p agent-outside
exec cargo test -p ferry-e2e --test e2e -- --ignored --exact "campaign::$test" --nocapture
