#!/usr/bin/env python3
"""What the Kubernetes schemas cannot see in deploy/kubernetes/: that the manifests refer to each
other correctly. Run by scripts/check-deploy.sh after kubernetes-validate (the schemas).

Checks that every workload's selector matches its own pod template, every Service and
PodDisruptionBudget selects some workload's pods, a StatefulSet's serviceName is a headless
Service, a Service's named target ports and a probe's named ports are ports of those containers,
every volume mount names a volume, and every ConfigMap referred to is defined here. Secrets are
created by hand (statefulset.yaml says how) and only listed.

    python3 scripts/check_kubernetes.py deploy/kubernetes/*.yaml
"""

import sys

import yaml


def selects(selector, labels):
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def containers_of(pod_spec):
    return pod_spec.get("initContainers", []) + pod_spec.get("containers", [])


def check(documents):
    by_kind = {}
    for document in documents:
        by_kind.setdefault(document["kind"], []).append(document)
    problems, secrets = [], set()
    config_maps = {document["metadata"]["name"] for document in by_kind.get("ConfigMap", [])}
    services = {document["metadata"]["name"]: document for document in by_kind.get("Service", [])}
    workloads = by_kind.get("StatefulSet", []) + by_kind.get("Deployment", [])

    for workload in workloads:
        name, spec = workload["metadata"]["name"], workload["spec"]
        template = spec["template"]
        labels = template["metadata"].get("labels", {})
        if not selects(spec["selector"].get("matchLabels"), labels):
            problems.append(f"{name}: the selector does not match the pod template's labels")
        if workload["kind"] == "StatefulSet":
            governing = services.get(spec.get("serviceName"))
            if governing is None or governing["spec"].get("clusterIP") != "None":
                problems.append(f"{name}: serviceName {spec.get('serviceName')!r} is no headless Service here")
        pod = template["spec"]
        volumes = {volume["name"] for volume in pod.get("volumes", [])}
        volumes |= {claim["metadata"]["name"] for claim in spec.get("volumeClaimTemplates", [])}
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                secrets.add(volume["secret"]["secretName"])
            if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
                problems.append(f"{name}: volume {volume['name']} names an undefined ConfigMap")
        for container in containers_of(pod):
            where = f"{name}/{container['name']}"
            ports = {port.get("name") for port in container.get("ports", [])}
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problems.append(f"{where}: mounts the undefined volume {mount['name']}")
            for source in container.get("envFrom", []):
                if "configMapRef" in source and source["configMapRef"]["name"] not in config_maps:
                    problems.append(f"{where}: envFrom names an undefined ConfigMap")
                if "secretRef" in source:
                    secrets.add(source["secretRef"]["name"])
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {})
                if "configMapKeyRef" in reference:
                    key = reference["configMapKeyRef"]
                    if key["name"] not in config_maps:
                        problems.append(f"{where}: {variable['name']} names an undefined ConfigMap")
                if "secretKeyRef" in reference:
                    secrets.add(reference["secretKeyRef"]["name"])
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in ports:
                    problems.append(f"{where}: {probe} uses the undefined port {port!r}")

    def pods_selected(selector):
        return [
            workload
            for workload in workloads
            if selects(selector, workload["spec"]["template"]["metadata"].get("labels", {}))
        ]

    for name, service in services.items():
        selected = pods_selected(service["spec"].get("selector"))
        if not selected:
            problems.append(f"Service {name}: selects no workload's pods")
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort")
            if isinstance(target, str) and not any(
                target in {p.get("name") for p in container.get("ports", [])}
                for workload in selected
                for container in workload["spec"]["template"]["spec"]["containers"]
            ):
                problems.append(f"Service {name}: targetPort {target!r} is no container port")
    for budget in by_kind.get("PodDisruptionBudget", []):
        if not pods_selected(budget["spec"]["selector"].get("matchLabels")):
            problems.append(f"PodDisruptionBudget {budget['metadata']['name']}: selects no workload's pods")
    return problems, secrets


def main(paths):
    documents = []
    for path in paths:
        with open(path, encoding="utf-8") as file:
            documents += [document for document in yaml.safe_load_all(file) if document]
    problems, secrets = check(documents)
    for problem in problems:
        print(f"check_kubernetes: {problem}", file=sys.stderr)
    if problems:
        return 1
    kinds = sorted(f"{document['kind']}/{document['metadata']['name']}" for document in documents)
    print(f"check_kubernetes: {len(documents)} resources refer to each other correctly ({', '.join(kinds)}); "
          f"Secrets to create by hand: {', '.join(sorted(secrets)) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
