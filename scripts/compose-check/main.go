// Command compose-check loads a Compose file the way `docker compose` does (compose-go, the
// Compose specification's reference implementation, which docker compose itself uses) and fails
// on anything docker compose would refuse: YAML errors, fields the Compose schema does not
// allow, values of the wrong type, services depending on or mounting what is not defined. It
// needs no Docker engine. Beyond the loader, it checks what the engine would otherwise find at
// `up`: every build context holds its Dockerfile and every bind-mounted path exists (but those
// named with -allow-missing, which the user creates).
//
//	go run . -allow-missing .local ../../docker-compose.yml
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	allowMissing := flag.String("allow-missing", "",
		"comma-separated bind-mount sources, relative to the file's directory, that may be absent")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [-allow-missing a,b] COMPOSE_FILE")
		os.Exit(2)
	}
	if err := check(flag.Arg(0), strings.Split(*allowMissing, ",")); err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
}

func check(file string, allowMissing []string) error {
	path, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	options, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(dir),
		cli.WithName("compose-check"),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return err
	}

	allowed := map[string]bool{}
	for _, name := range allowMissing {
		if name != "" {
			allowed[filepath.Join(dir, name)] = true
		}
	}
	var problems []string
	for _, service := range project.Services {
		problems = append(problems, checkService(service, allowed)...)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}

	names := project.ServiceNames()
	sort.Strings(names)
	volumes := make([]string, 0, len(project.Volumes))
	for name := range project.Volumes {
		volumes = append(volumes, name)
	}
	sort.Strings(volumes)
	fmt.Printf("%s: valid; services %s; volumes %s\n", file,
		strings.Join(names, ", "), strings.Join(volumes, ", "))
	return nil
}

// checkService names what the engine would refuse at `up` for one service.
func checkService(service types.ServiceConfig, allowed map[string]bool) []string {
	var problems []string
	if build := service.Build; build != nil {
		dockerfile := build.Dockerfile
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		if !filepath.IsAbs(dockerfile) {
			dockerfile = filepath.Join(build.Context, dockerfile)
		}
		if _, err := os.Stat(dockerfile); err != nil {
			problems = append(problems, fmt.Sprintf("service %s builds from %s: %v",
				service.Name, dockerfile, err))
		}
	}
	for _, volume := range service.Volumes {
		if volume.Type != types.VolumeTypeBind || allowed[volume.Source] {
			continue
		}
		if _, err := os.Stat(volume.Source); err != nil {
			problems = append(problems, fmt.Sprintf("service %s mounts %s: %v",
				service.Name, volume.Source, err))
		}
	}
	return problems
}
