#!/usr/bin/env python3
# Writes deploy/grafana/ferry-dashboard.json (run from the repository root):
# the dashboard is generated so that its panels stay consistent; edit this
# file, not the JSON.
import json
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
panels = []
y = 0
pid = 0
def row(title):
    global y, pid
    pid += 1
    panels.append({"type": "row", "title": title, "id": pid, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1
def panel(kind, title, targets, x, w, h=8, unit=None, desc=None, extra=None):
    global pid
    pid += 1
    p = {"type": kind, "title": title, "id": pid, "datasource": DS,
         "gridPos": {"h": h, "w": w, "x": x, "y": y},
         "targets": [dict({"refId": chr(65 + i), "datasource": DS}, **t) for i, t in enumerate(targets)],
         "fieldConfig": {"defaults": {}, "overrides": []}, "options": {}}
    if unit: p["fieldConfig"]["defaults"]["unit"] = unit
    if desc: p["description"] = desc
    if extra: p.update(extra)
    panels.append(p)
def t(expr, legend=None, instant=False, fmt=None):
    d = {"expr": expr}
    if legend: d["legendFormat"] = legend
    if instant: d["instant"] = True; d["range"] = False
    if fmt: d["format"] = fmt
    return d
# Every coordinator node serves the same task series (read from the
# replicated state): `max by` keeps one copy.
T = 'task=~"$task"'
row("Tasks")
panel("table", "Tasks", [t(f'max by (task, type, state) (ferry_task_info{{{T}}})', instant=True, fmt="table")], 0, 12, 7,
      desc="Each task with its migration type and state (ferry task status)",
      extra={"transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}]})
panel("stat", "Tables in error", [t(f'max by (task) (ferry_tables_errored{{{T}}})', "{{task}}")], 12, 6, 7,
      desc="DMS TablesErrored: tables that stopped applying changes")
panel("stat", "Segments waiting / running", [t(f'max by (state) (ferry_full_load_segments{{{T}, state=~"waiting|running"}})', "{{state}}")], 18, 6, 7)
y += 7
row("Full load")
panel("bargauge", "Rows loaded per table", [t(f'max by (task, table) (ferry_full_load_rows{{{T}}})', "{{task}} {{table}}", instant=True)], 0, 12, 9,
      desc="DMS FullLoadRows", extra={"options": {"displayMode": "gradient", "orientation": "horizontal"}})
panel("timeseries", "Full-load rows/s", [t(f'sum by (task) (max by (task, table) (rate(ferry_full_load_rows{{{T}}}[1m])))', "{{task}}")], 12, 12, 9,
      unit="rowsps", desc="DMS FullLoadThroughputRowsTarget")
y += 9
panel("timeseries", "Segments by state", [t(f'max by (task, state) (ferry_full_load_segments{{{T}}})', "{{task}} {{state}}")], 0, 12, 8)
panel("timeseries", "Rows the target refused", [t(f'max by (task, table) (ferry_full_load_error_rows{{{T}}})', "load {{table}}"),
                                                  t(f'max by (task, table) (ferry_cdc_apply_exceptions{{{T}}})', "cdc {{table}}")], 12, 12, 8,
      desc="DMS FullLoadErrorRows and CDC apply exceptions (ferry.apply_exceptions)")
y += 8
row("CDC")
panel("timeseries", "CDC latency", [t(f'max by (task) (ferry_cdc_latency_source_seconds{{{T}}})', "{{task}} source"),
                                    t(f'max by (task) (ferry_cdc_latency_target_seconds{{{T}}})', "{{task}} target")], 0, 12, 8,
      unit="s", desc="DMS CDCLatencySource / CDCLatencyTarget")
panel("timeseries", "CDC throughput", [t(f'max by (task) (ferry_cdc_throughput_rows_target{{{T}}})', "{{task}}")], 12, 12, 8,
      unit="rowsps", desc="DMS CDCThroughputRowsTarget")
y += 8
panel("timeseries", "Changes applied/s", [t(f'sum by (task) (max by (task, table) (rate(ferry_cdc_inserts{{{T}}}[1m])))', "{{task}} inserts"),
                                          t(f'sum by (task) (max by (task, table) (rate(ferry_cdc_updates{{{T}}}[1m])))', "{{task}} updates"),
                                          t(f'sum by (task) (max by (task, table) (rate(ferry_cdc_deletes{{{T}}}[1m])))', "{{task}} deletes")], 0, 8, 8,
      unit="ops")
panel("timeseries", "Incoming changes", [t(f'max by (task) (ferry_cdc_incoming_changes{{{T}}})', "{{task}}")], 8, 8, 8,
      desc="DMS CDCIncomingChanges: received, not yet committed on the target")
panel("timeseries", "Retained WAL and report age", [t(f'max by (task) (ferry_cdc_retained_wal_bytes{{{T}}})', "{{task}} retained WAL"),
                                                    t(f'max by (task) (ferry_cdc_report_age_seconds{{{T}}})', "{{task}} report age (s)")], 16, 8, 8,
      unit="bytes")
y += 8
row("Validation")
panel("timeseries", "Validation", [t(f'sum by (task) (max by (task, table) (ferry_validation_attempted_records{{{T}}}))', "{{task}} attempted"),
                                   t(f'sum by (task) (max by (task, table) (ferry_validation_failed_records{{{T}}}))', "{{task}} failed")], 0, 24, 7,
      desc="DMS ValidationAttemptedRecords / ValidationFailedRecords")
y += 7
row("Capacity and workers")
panel("timeseries", "Capacity units", [t('max(ferry_desired_capacity)', "desired"), t('max(ferry_granted_capacity)', "granted"),
                                       t('sum(ferry_worker_slots)', "worker slots")], 0, 8, 8)
panel("timeseries", "Worker CPU", [t('rate(ferry_worker_cpu_seconds_total[1m])', "{{instance}}")], 8, 8, 8, unit="percentunit")
panel("timeseries", "Worker memory", [t('ferry_worker_resident_memory_bytes', "{{instance}}")], 16, 8, 8, unit="bytes")
y += 8
panel("timeseries", "Bandwidth from the source", [t(f'sum by (task) (rate(ferry_worker_full_load_bytes_source_total{{{T}}}[1m]))', "{{task}} full load"),
                                                  t(f'sum by (task) (rate(ferry_worker_cdc_bytes_source_total{{{T}}}[1m]))', "{{task}} CDC")], 0, 12, 7,
      unit="Bps", desc="DMS FullLoadThroughputBandwidthSource / CDCThroughputBandwidthSource: bytes the workers read")
panel("timeseries", "Bandwidth to the target", [t(f'sum by (task) (rate(ferry_worker_full_load_bytes_target_total{{{T}}}[1m]))', "{{task}} full load"),
                                                t(f'sum by (task) (rate(ferry_worker_cdc_bytes_target_total{{{T}}}[1m]))', "{{task}} CDC")], 12, 12, 7,
      unit="Bps", desc="DMS FullLoadThroughputBandwidthTarget / CDCThroughputBandwidthTarget: bytes the workers sent")
y += 7
row("Coordinator cluster")
panel("stat", "Leader", [t('max(ferry_raft_leader_id)', "leader node")], 0, 4, 6)
panel("stat", "Term", [t('max(ferry_raft_term)', "term")], 4, 4, 6)
panel("timeseries", "Raft log entries on disk", [t('ferry_raft_log_entries', "node {{node}}")], 8, 8, 6)
panel("timeseries", "Replication lag (entries)", [t('max by (peer) (ferry_raft_replication_lag_entries)', "node {{peer}}")], 16, 8, 6)
y += 6
dash = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "title": "Ferry migrations", "uid": "ferry-migrations", "tags": ["ferry"], "timezone": "utc",
    "schemaVersion": 39, "version": 1, "editable": True, "refresh": "10s",
    "time": {"from": "now-1h", "to": "now"},
    "description": "Ferry's tasks, full load, CDC, validation, capacity and coordinator cluster (docs/observability.md lists the series)",
    "templating": {"list": [{"name": "task", "label": "Task", "type": "query", "datasource": DS,
                             "query": {"query": "label_values(ferry_task_info, task)", "refId": "task"},
                             "definition": "label_values(ferry_task_info, task)",
                             "multi": True, "includeAll": True, "allValue": ".*", "refresh": 2,
                             "current": {"text": "All", "value": "$__all"}}]},
    "panels": panels,
}
open("deploy/grafana/ferry-dashboard.json", "w").write(json.dumps(dash, indent=2) + "\n")
