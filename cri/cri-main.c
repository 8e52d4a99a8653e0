/* SPDX-License-Identifier: MIT */
/* hull-cri: the CRI server kubelet talks to (--container-runtime-endpoint
 * unix:///run/hull/cri.sock). docs/kubernetes.md. */
#include <errno.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cri.h"
#include "image.h"
#include "log.h"
#include "util.h"

static void usage(FILE *f)
{
	fputs("usage: hull-cri [--config FILE] [--socket PATH] [--root DIR] [--state DIR]\n"
	      "                [--image-root DIR] [--stream-address HOST:PORT] [--log-level L]\n"
	      "\n"
	      "Serves Kubernetes' CRI (runtime.v1 RuntimeService and ImageService) for kubelet,\n"
	      "each pod a VM run by containerd-shim-hull-v2. The command line overrides the\n"
	      "config file (default " CRI_DEFAULT_CONFIG ").\n"
	      "\n"
	      "  --config FILE         the config file (docs/kubernetes.md lists its keys)\n"
	      "  --socket PATH         the CRI socket (default " CRI_DEFAULT_SOCKET ")\n"
	      "  --root DIR            persistent state: pod and container metadata\n"
	      "                        (default " CRI_DEFAULT_ROOT ")\n"
	      "  --state DIR           runtime state: bundles, sockets (default " CRI_DEFAULT_STATE
	      ")\n"
	      "  --image-root DIR      the image store (default: hull's, as `hull pull` uses)\n"
	      "  --stream-address A    where exec/attach/port-forward URLs point (127.0.0.1:0)\n"
	      "  --log-level L         error, warn, info or debug\n"
	      "  --version             print the version\n",
	      f);
}

enum {
	OPT_CONFIG = 256,
	OPT_SOCKET,
	OPT_ROOT,
	OPT_STATE,
	OPT_IMAGE_ROOT,
	OPT_STREAM,
	OPT_LOG_LEVEL,
	OPT_VERSION,
	OPT_HELP,
};

static void set_str(char **slot, const char *v)
{
	free(*slot);
	*slot = xstrdup(v);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, OPT_CONFIG},
	    {"socket", required_argument, NULL, OPT_SOCKET},
	    {"root", required_argument, NULL, OPT_ROOT},
	    {"state", required_argument, NULL, OPT_STATE},
	    {"image-root", required_argument, NULL, OPT_IMAGE_ROOT},
	    {"stream-address", required_argument, NULL, OPT_STREAM},
	    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *o_socket = NULL, *o_root = NULL, *o_state = NULL,
	           *o_images = NULL, *o_stream = NULL, *o_level = NULL;
	_cleanup_error_ struct hull_error *err = NULL;
	struct cri c = {0};
	bool stop = false;
	int opt, sfd, r, rc = 1;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_CONFIG:
			config = optarg;
			break;
		case OPT_SOCKET:
			o_socket = optarg;
			break;
		case OPT_ROOT:
			o_root = optarg;
			break;
		case OPT_STATE:
			o_state = optarg;
			break;
		case OPT_IMAGE_ROOT:
			o_images = optarg;
			break;
		case OPT_STREAM:
			o_stream = optarg;
			break;
		case OPT_LOG_LEVEL:
			o_level = optarg;
			break;
		case OPT_VERSION:
			printf("hull-cri %s (CRI %s)\n", HULL_VERSION, CRI_API_VERSION);
			return 0;
		case 'h':
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hull-cri: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	log_setup("cri", LOG_LEVEL_INFO);
	/* Under systemd (the unit in docs/kubernetes.md), stderr is the journal. */
	log_set_journal(getenv("JOURNAL_STREAM") != NULL);
	/* Before any thread: pulls run on workers. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	cri_config_defaults(&c.cfg);
	if (cri_config_load(config, config != NULL, &c.cfg, &err) < 0) {
		log_error("%s", err->msg);
		goto out;
	}
	if (o_socket)
		set_str(&c.cfg.socket, o_socket);
	if (o_root)
		set_str(&c.cfg.root, o_root);
	if (o_state)
		set_str(&c.cfg.state, o_state);
	if (o_images)
		set_str(&c.cfg.image_root, o_images);
	if (o_stream)
		set_str(&c.cfg.stream_address, o_stream);
	if (o_level) {
		int l = log_level_from_string(o_level);
		if (l < 0) {
			log_error("--log-level '%s': want error, warn, info or debug", o_level);
			goto out;
		}
		c.cfg.log_level = l;
	}
	log_set_level(c.cfg.log_level);
	for (const char **p = (const char *[]){c.cfg.socket, c.cfg.root, c.cfg.state, NULL}; *p;
	     p++)
		if ((*p)[0] != '/') {
			log_error("'%s' is not an absolute path", *p);
			goto out;
		}
	/* CNI through hull run's code (sandbox/cni.c), which reads these. */
	setenv("HULL_CNI_CONF_DIR", c.cfg.cni_conf_dir, 1);
	{
		_cleanup_free_ char *path = xstrdup("");
		for (size_t i = 0; c.cfg.cni_bin_dirs && c.cfg.cni_bin_dirs[i]; i++) {
			char *n =
			    xasprintf("%s%s%s", path, *path ? ":" : "", c.cfg.cni_bin_dirs[i]);
			free(path);
			path = n;
		}
		setenv("CNI_PATH", path, 1);
	}
	/* Pulls go through hull pull's code, which reads these. */
	if (c.cfg.registry_mirrors)
		setenv("HULL_REGISTRY_MIRRORS", c.cfg.registry_mirrors, 1);
	if (c.cfg.insecure_registries && c.cfg.insecure_registries[0]) {
		_cleanup_free_ char *v = xstrdup(c.cfg.insecure_registries[0]);
		for (size_t i = 1; c.cfg.insecure_registries[i]; i++) {
			char *n = xasprintf("%s,%s", v, c.cfg.insecure_registries[i]);
			free(v);
			v = n;
		}
		setenv("HULL_INSECURE_REGISTRIES", v, 1);
	}

	c.loop = event_loop_new();
	sfd = event_add_stop_signals(c.loop, &stop);
	if (sfd < 0) {
		log_error("signals: %s", strerror(-sfd));
		goto out;
	}
	{
		_cleanup_free_ char *images =
		    c.cfg.image_root ? xstrdup(c.cfg.image_root) : image_store_default_root();
		if (image_store_open(images, &c.images, &err) < 0) {
			log_error("image store '%s': %s", images, err->msg);
			goto out;
		}
	}
	r = cri_work_init(&c);
	if (r < 0) {
		log_error("worker pipe: %s", strerror(-r));
		goto out;
	}
	if (cri_runtime_init(&c, &err) < 0) {
		log_error("%s", err->msg);
		goto out;
	}
	{
		size_t n = cri_runtime_n_methods + cri_image_n_methods;
		struct grpc_method *m = xcalloc(n, sizeof(*m));
		memcpy(m, cri_runtime_methods, cri_runtime_n_methods * sizeof(*m));
		memcpy(m + cri_runtime_n_methods, cri_image_methods,
		       cri_image_n_methods * sizeof(*m));
		c.methods = m;
		c.grpc = grpc_server_new(c.loop, m, n, &c);
	}
	{
		_cleanup_free_ char *dir =
		    xstrndup(c.cfg.socket, (size_t)(strrchr(c.cfg.socket, '/') - c.cfg.socket));
		if (*dir)
			(void)mkdir_p(dir, 0755);
	}
	if (grpc_server_listen(c.grpc, c.cfg.socket, 0660, &err) < 0) {
		log_error("%s", err->msg);
		goto out;
	}
	log_info("serving CRI %s on '%s' (root '%s', state '%s')", CRI_API_VERSION, c.cfg.socket,
	         c.cfg.root, c.cfg.state);
	while (!stop) {
		r = event_loop_once(c.loop, -1);
		if (r < 0 && r != -EINTR) {
			log_error("event loop: %s", strerror(-r));
			goto out;
		}
	}
	/* Pods outlive us: a restart re-attaches to their shims. */
	log_info("stopping; pods keep running");
	rc = 0;
out:
	c.grpc = grpc_server_free(c.grpc);
	cri_runtime_done(&c);
	cri_work_done(&c);
	if (c.images)
		image_store_close(c.images);
	free(c.methods);
	if (c.loop)
		event_loop_free(c.loop);
	cri_config_done(&c.cfg);
	return rc;
}
