//! deploy/kubernetes: no cluster runs here, so the manifests are checked the
//! way a cluster would use them. Every file of the kustomization parses;
//! the references between objects hold (selectors, service names, ports,
//! probes, volumes, secrets, the ScaledObject's target and scaler address);
//! the Dockerfile's binaries, user and ports agree with them. Then the
//! containers' command lines run against the built binaries — three
//! StatefulSet pods (their DNS names mapped to loopback ports) and two
//! worker pods — with their TLS and tokens, until a task loads through them,
//! their probes answer, and KEDA's scaler API answers a worker certificate.
use ferry_common::externalscaler::{external_scaler_client::ExternalScalerClient, ScaledObjectRef};
use ferry_tests::*;
use serde::Deserialize as _;
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// Every object of the kustomization, in file order.
fn objects() -> Vec<Value> {
    let k: Value = serde_yaml::from_str(&std::fs::read_to_string(base().join("kustomization.yaml")).unwrap()).unwrap();
    assert_eq!(k["namespace"], "ferry");
    let mut out = vec![];
    for r in k["resources"].as_sequence().expect("resources") {
        let file = base().join(r.as_str().unwrap());
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(
                v["kind"].is_string() && v["metadata"]["name"].is_string(),
                "{}: {v:?}",
                file.display()
            );
            out.push(v);
        }
    }
    out
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn seq(v: &Value) -> &Vec<Value> {
    v.as_sequence().unwrap_or_else(|| panic!("not a list: {v:?}"))
}

/// A container's `--flag=value`.
fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {args:?}"))
}

fn args_of(container: &Value) -> Vec<String> {
    seq(&container["args"]).iter().map(|a| s(a).to_string()).collect()
}

/// Checks that a workload's selector matches its pod labels, its probes
/// name its ports, and every mounted volume exists; answers the container.
fn check_workload<'a>(w: &'a Value, claims: &[&str]) -> &'a Value {
    let name = s(&w["metadata"]["name"]);
    let labels = &w["spec"]["template"]["metadata"]["labels"];
    for (k, v) in w["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&labels[k], v, "{name}: selector {k:?} does not match the pod's labels");
    }
    let pod = &w["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name} runs as non-root");
    let c = &seq(&pod["containers"])[0];
    let ports: BTreeSet<&str> = seq(&c["ports"]).iter().map(|p| s(&p["name"])).collect();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{name} {probe}");
        assert!(
            ports.contains(s(&c[probe]["httpGet"]["port"])),
            "{name} {probe} names no port of its"
        );
    }
    let volumes: BTreeSet<&str> = seq(&pod["volumes"]).iter().map(|v| s(&v["name"])).collect();
    for v in seq(&pod["volumes"]) {
        assert!(v["emptyDir"].is_null(), "{name}: no emptyDir volumes");
    }
    for m in seq(&c["volumeMounts"]) {
        let v = s(&m["name"]);
        assert!(
            volumes.contains(v) || claims.contains(&v),
            "{name} mounts unknown volume {v}"
        );
    }
    c
}

/// The Kubernetes expansion of `$(VAR)` in an argument.
fn expand(arg: &str, env: &[(&str, &str)]) -> String {
    let mut out = arg.to_string();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    assert!(!out.contains("$("), "unexpanded variable in {arg}");
    out
}

#[test]
fn manifests_hold_together() {
    let objs = objects();
    // Coordinators: StatefulSet behind a headless Service with stable names.
    let sts = find(&objs, "StatefulSet", "ferry-coordinator");
    let claims: Vec<&str> = seq(&sts["spec"]["volumeClaimTemplates"])
        .iter()
        .map(|c| s(&c["metadata"]["name"]))
        .collect();
    let c = check_workload(sts, &claims);
    let peers = find(&objs, "Service", s(&sts["spec"]["serviceName"]));
    assert_eq!(
        peers["spec"]["clusterIP"], "None",
        "the StatefulSet's Service is headless"
    );
    assert_eq!(peers["spec"]["publishNotReadyAddresses"], true);
    let args = args_of(c);
    let data = flag(&args, "--data-dir");
    assert!(
        seq(&c["volumeMounts"])
            .iter()
            .any(|m| claims.contains(&s(&m["name"])) && data.starts_with(s(&m["mountPath"]))),
        "RocksDB ({data}) lives on a volume claim"
    );
    assert!(args.contains(&"--node-id-from-hostname".to_string()));
    let advertise = flag(&args, "--advertise");
    assert!(advertise.starts_with(&format!("$(POD_NAME).{}.", s(&peers["metadata"]["name"]))));
    let join = flag(&args, "--join");
    let sts_name = s(&sts["metadata"]["name"]);
    assert_eq!(
        join.replace("https://", ""),
        advertise.replace("$(POD_NAME)", &format!("{sts_name}-0")),
        "--join names pod 0's advertised address"
    );
    let grpc_port = flag(&args, "--listen").rsplit(':').next().unwrap().to_string();
    assert!(advertise.ends_with(&format!(":{grpc_port}")));
    let pdb = find(&objs, "PodDisruptionBudget", "ferry-coordinator");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(
        pdb["spec"]["minAvailable"].as_u64().unwrap(),
        replicas / 2 + 1,
        "a majority stays up"
    );
    assert_eq!(pdb["spec"]["selector"], sts["spec"]["selector"]);

    // Services select pods that have the ports they target.
    for svc in objs.iter().filter(|o| o["kind"] == "Service") {
        let target = objs
            .iter()
            .filter(|o| o["kind"] == "StatefulSet" || o["kind"] == "Deployment")
            .find(|w| {
                svc["spec"]["selector"]
                    .as_mapping()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| &w["spec"]["template"]["metadata"]["labels"][k] == v)
            })
            .unwrap_or_else(|| panic!("Service {:?} selects no workload", svc["metadata"]["name"]));
        let ports: BTreeSet<&str> = seq(&seq(&target["spec"]["template"]["spec"]["containers"])[0]["ports"])
            .iter()
            .map(|p| s(&p["name"]))
            .collect();
        for p in seq(&svc["spec"]["ports"]) {
            assert!(
                ports.contains(s(&p["targetPort"])),
                "{:?} targets a port its pods lack",
                svc["metadata"]["name"]
            );
        }
    }

    // Workers: drain inside the grace period, one capacity unit per pod.
    let dep = find(&objs, "Deployment", "ferry-worker");
    let w = check_workload(dep, &[]);
    let wargs = args_of(w);
    let grace: u64 = flag(&wargs, "--drain-grace").parse().unwrap();
    let term = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        term >= grace + 10,
        "termination grace {term} s leaves the {grace} s drain no margin"
    );
    let slots: u64 = flag(&wargs, "--slots").parse().unwrap();
    assert_eq!(
        w["resources"]["limits"]["cpu"].as_str(),
        Some(slots.to_string().as_str()),
        "1 vCPU per slot"
    );
    let client_svc = s(&find(&objs, "Service", "ferry-coordinator")["metadata"]["name"]);
    assert_eq!(
        flag(&wargs, "--coordinator"),
        format!("https://{client_svc}.$(POD_NAMESPACE).svc.cluster.local:{grpc_port}")
    );
    // Every secret env var is one the worker may send, and vice versa.
    let allowed: BTreeSet<String> = flag(&wargs, "--allow-secret")
        .split(',')
        .map(|a| a.strip_prefix("env:").expect("env: secrets").to_string())
        .collect();
    let from_secrets: BTreeSet<String> = seq(&w["env"])
        .iter()
        .filter(|e| !e["valueFrom"]["secretKeyRef"].is_null())
        .map(|e| s(&e["name"]).to_string())
        .collect();
    assert_eq!(allowed, from_secrets);

    // KEDA: scales the Deployment on the client Service's gRPC port, with
    // a certificate from the TLS secret.
    let so = find(&objs, "ScaledObject", "ferry-worker");
    assert_eq!(so["spec"]["scaleTargetRef"]["name"], dep["metadata"]["name"]);
    let trigger = &seq(&so["spec"]["triggers"])[0];
    assert_eq!(trigger["type"], "external");
    assert_eq!(
        s(&trigger["metadata"]["scalerAddress"]),
        format!("{client_svc}.ferry.svc.cluster.local:{grpc_port}")
    );
    assert_eq!(
        s(&trigger["metadata"]["unitsPerReplica"]),
        slots.to_string(),
        "units per pod = slots"
    );
    let auth = find(&objs, "TriggerAuthentication", s(&trigger["authenticationRef"]["name"]));

    // Secrets: each one named is created by the README, and each key is a
    // file `ferry certs init` writes (or the README's literal).
    let readme = std::fs::read_to_string(base().join("README.md")).unwrap();
    let certs = tempfile::tempdir().unwrap();
    assert!(Command::new(bin_dir().join("ferry"))
        .args(["certs", "init"])
        .arg(certs.path().join("c"))
        .status()
        .unwrap()
        .success());
    let mut refs: Vec<(String, String)> = vec![];
    for o in &objs {
        let pod = &o["spec"]["template"]["spec"];
        if let Some(vols) = pod["volumes"].as_sequence() {
            for v in vols.iter().filter(|v| !v["secret"].is_null()) {
                let name = s(&v["secret"]["secretName"]).to_string();
                match v["secret"]["items"].as_sequence() {
                    Some(items) => refs.extend(items.iter().map(|i| (name.clone(), s(&i["key"]).to_string()))),
                    None => refs.push((name, String::new())),
                }
            }
        }
        if let Some(cs) = pod["containers"].as_sequence() {
            for e in cs.iter().flat_map(|c| c["env"].as_sequence().into_iter().flatten()) {
                let r = &e["valueFrom"]["secretKeyRef"];
                if !r.is_null() {
                    refs.push((s(&r["name"]).to_string(), s(&r["key"]).to_string()));
                }
            }
        }
    }
    for r in seq(&auth["spec"]["secretTargetRef"]) {
        refs.push((s(&r["name"]).to_string(), s(&r["key"]).to_string()));
    }
    for (secret, key) in &refs {
        assert!(
            readme.contains(&format!("create secret generic {secret}")),
            "README creates no secret {secret}"
        );
        if secret == "ferry-tls" {
            assert!(
                key.is_empty() || certs.path().join("c").join(key).exists(),
                "ferry-tls key {key} is no certs file"
            );
            assert!(
                key.is_empty() || readme.contains(&format!("ferry-certs/{key}")),
                "README leaves {key} out of ferry-tls"
            );
        } else {
            assert!(
                readme.contains(&format!("--from-literal={key}=")),
                "README sets no key {key} of {secret}"
            );
        }
    }
    assert!(
        !readme.contains("--from-file=ferry-certs/ca-key.pem"),
        "the CA key stays out of the cluster"
    );
    // The certificate files the containers read come from that secret.
    for path in [
        flag(&wargs, "--tls-ca"),
        flag(&wargs, "--tls-cert"),
        flag(&wargs, "--tls-key"),
    ] {
        let file = Path::new(path).file_name().unwrap().to_str().unwrap();
        assert!(certs.path().join("c").join(file).exists(), "{path}");
    }

    // The Dockerfile builds what the manifests run, as the user they name,
    // exposing the ports they use.
    let docker = std::fs::read_to_string(base().join("Dockerfile")).unwrap();
    let user = docker
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER")
        .trim();
    for wl in [sts, dep] {
        assert_eq!(
            wl["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
                .as_u64()
                .unwrap()
                .to_string(),
            user
        );
    }
    let exposed: BTreeSet<u64> = docker
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .expect("EXPOSE")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let used: BTreeSet<u64> = [c, w]
        .iter()
        .flat_map(|c| seq(&c["ports"]).iter().map(|p| p["containerPort"].as_u64().unwrap()))
        .collect();
    assert_eq!(exposed, used, "EXPOSE matches the containers' ports");
    let copy = docker
        .lines()
        .find(|l| l.starts_with("COPY --from=build"))
        .expect("COPY of the binaries");
    let dest = copy.split_whitespace().last().unwrap();
    for bin in ["ferry", "ferry-worker"] {
        assert!(copy.contains(&format!("/{bin} ")), "the image copies {bin}");
        assert!(bin_dir().join(bin).exists(), "the build makes {bin}");
        assert!(docker.contains(&format!("target/release/{bin}")));
    }
    let entry = docker
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    assert_eq!(entry.trim(), format!("[\"{dest}ferry\"]"));
    assert_eq!(seq(&w["command"])[0].as_str().unwrap(), format!("{dest}ferry-worker"));
    assert!(c["command"].is_null(), "the coordinator runs the image's entrypoint");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pods_command_lines_run_a_migration() -> anyhow::Result<()> {
    let objs = objects();
    let sts = find(&objs, "StatefulSet", "ferry-coordinator");
    let dep = find(&objs, "Deployment", "ferry-worker");
    let coord = &seq(&sts["spec"]["template"]["spec"]["containers"])[0];
    let worker = &seq(&dep["spec"]["template"]["spec"]["containers"])[0];
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("tls");
    assert!(Command::new(bin_dir().join("ferry"))
        .args(["certs", "init"])
        .arg(&certs)
        .status()?
        .success());
    let token = "k8s-test-admin-token-0123456789";
    std::fs::create_dir_all(dir.path().join("admin"))?;
    std::fs::write(dir.path().join("admin/token"), token)?;

    // Pod i: gRPC on grpc[i], probes on metrics[i], all on loopback.
    let grpc: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let metrics: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let localize = |arg: String, pod: Option<usize>| {
        let mut a = arg;
        for (i, port) in grpc.iter().enumerate() {
            a = a.replace(
                &format!("ferry-coordinator-{i}.ferry-coordinator-peers.ferry.svc.cluster.local:7400"),
                &format!("127.0.0.1:{port}"),
            );
        }
        a = a.replace(
            "ferry-coordinator.ferry.svc.cluster.local:7400",
            &format!("127.0.0.1:{}", grpc[0]),
        );
        if let Some(i) = pod {
            a = a
                .replace("0.0.0.0:7400", &format!("127.0.0.1:{}", grpc[i]))
                .replace("0.0.0.0:9400", &format!("127.0.0.1:{}", metrics[i]))
                .replace(
                    "/var/lib/ferry",
                    &dir.path().join(format!("pvc-{i}")).display().to_string(),
                );
        }
        a.replace("/etc/ferry/tls", &certs.display().to_string())
            .replace("/etc/ferry/admin", &dir.path().join("admin").display().to_string())
    };
    let mut pods = vec![];
    for i in 0..3 {
        let name = format!("ferry-coordinator-{i}");
        let env = [("POD_NAME", name.as_str()), ("POD_NAMESPACE", "ferry")];
        let mut cmd = Command::new(bin_dir().join("ferry"));
        for a in args_of(coord) {
            cmd.arg(localize(expand(&a, &env), Some(i)));
        }
        cmd.env("HOSTNAME", &name);
        std::fs::create_dir_all(dir.path().join(format!("pvc-{i}")))?;
        let log = std::fs::File::create(dir.path().join(format!("{name}.log")))?;
        pods.push(KillOnDrop(cmd.stdout(log.try_clone()?).stderr(log).spawn()?));
    }
    let logs = || {
        (0..3)
            .map(|i| std::fs::read_to_string(dir.path().join(format!("ferry-coordinator-{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "timed out waiting for {what}:\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    for (i, port) in metrics.iter().enumerate() {
        let addr = format!("127.0.0.1:{port}");
        wait(&format!("pod {i} to be live"), &|| {
            http_get(&addr, "/healthz").is_some_and(|(c, _)| c == 200)
        });
        wait(&format!("pod {i} to be ready"), &|| {
            http_get(&addr, "/readyz").is_some_and(|(c, _)| c == 200)
        });
    }
    let url = format!("https://127.0.0.1:{}", grpc[0]);
    let ca = certs.join("ca.pem");
    let ferry = |args: &[&str]| {
        let env = [
            ("FERRY_TLS_CA", ca.as_os_str()),
            ("FERRY_TOKEN", std::ffi::OsStr::new(token)),
        ];
        ferry_at(&url, &env, args)
    };
    wait("three voters", &|| {
        let (ok, out) = ferry(&["cluster", "status", "--output", "json"]);
        ok && serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|s| {
            s["members"]
                .as_array()
                .is_some_and(|m| m.iter().filter(|m| m["voter"] == true).count() == 3)
        })
    });

    // Two worker pods, their secrets as the Deployment maps them.
    let mut workers = vec![];
    for n in 0..2 {
        let mut cmd = Command::new(bin_dir().join("ferry-worker"));
        let probes = format!("127.0.0.1:{}", free_port());
        for a in args_of(worker) {
            cmd.arg(localize(expand(&a, &[("POD_NAMESPACE", "ferry")]), None).replace("0.0.0.0:9400", &probes));
        }
        cmd.env("FERRY_SOURCE_PASSWORD", "unused")
            .env("FERRY_TARGET_PASSWORD", "unused");
        let log = std::fs::File::create(dir.path().join(format!("worker-{n}.log")))?;
        workers.push(KillOnDrop(cmd.stdout(log.try_clone()?).stderr(log).spawn()?));
        wait(&format!("worker {n} to be ready"), &|| {
            http_get(&probes, "/readyz").is_some_and(|(c, _)| c == 200)
        });
    }
    let pg = PgServer::start()?;
    let src = pg.src_and_dst(20000).await?;
    for args in [
        vec![
            "task",
            "create",
            "k8s",
            "--source",
            &pg.url("src"),
            "--target",
            &pg.url("dst"),
        ],
        vec!["task", "start", "k8s"],
        vec!["task", "wait", "k8s", "--for", "completed", "--timeout", "120"],
    ] {
        let (ok, out) = ferry(&args);
        assert!(ok, "ferry {args:?}: {out}\n{}", logs());
    }
    assert_eq!(
        table_digest(&src, "t").await?,
        table_digest(&pg.client("dst").await?, "t").await?
    );

    // KEDA's view, through the ScaledObject's TLS parameters.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(
            certs.join("ca.pem"),
        )?))
        .identity(tonic::transport::Identity::from_pem(
            std::fs::read(certs.join("worker.pem"))?,
            std::fs::read(certs.join("worker-key.pem"))?,
        ))
        .domain_name("127.0.0.1");
    let ch = tonic::transport::Endpoint::from_shared(url.clone())?
        .tls_config(tls)?
        .connect()
        .await?;
    let active = ExternalScalerClient::new(ch)
        .is_active(ScaledObjectRef::default())
        .await?
        .into_inner();
    println!("KEDA IsActive after the load: {}", active.result);
    let (code, body) = http_get(&format!("127.0.0.1:{}", metrics[1]), "/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(body.contains("ferry_desired_capacity"), "{body}");
    drop(workers);
    drop(pods);
    Ok(())
}

/// A pod: killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
