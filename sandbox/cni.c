/* SPDX-License-Identifier: MIT */
/* A CNI runtime, small: the parts of the spec (github.com/containernetworking/cni,
 * SPEC.md) that `hull run --net=cni:NAME` needs. A network configuration list is found
 * by name, each plugin is executed with CNI_COMMAND=ADD and its config on stdin (name,
 * cniVersion and the previous result added), DEL runs in reverse with the last result. */
#include "cni.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define CNI_CONF_DIR "/etc/cni/net.d"
#define CNI_BIN_PATH "/usr/lib/cni:/opt/cni/bin"
#define CNI_TIMEOUT_MS 60000
#define CNI_MAX_OUTPUT (1u << 20)
#define CNI_MAX_CONF (1u << 20)

/* ---- results (outside input: a plugin's stdout) ---- */

static char **string_array(json_object *o, const char *key, size_t max)
{
	json_object *a;
	char **v = NULL;

	if (!o || !json_object_object_get_ex(o, key, &a) ||
	    !json_object_is_type(a, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(a) && i < max; i++) {
		json_object *s = json_object_array_get_idx(a, i);
		/* A newline would add lines of its own to resolv.conf. */
		if (json_object_is_type(s, json_type_string) &&
		    !strpbrk(json_object_get_string(s), "\n\r") &&
		    json_object_get_string_len(s) < 256)
			strv_push(&v, xstrdup(json_object_get_string(s)));
	}
	return v;
}

int cni_parse_result(const char *json, size_t len, struct cni_result *ret, struct hull_error **err)
{
	json_object *root, *ips, *dns = NULL;

	memset(ret, 0, sizeof(*ret));
	if (json_parse(json, len, 32, true, &root, err) < 0)
		return hull_error_prefix(err, "CNI result");
	if (json_object_object_get_ex(root, "ips", &ips) &&
	    json_object_is_type(ips, json_type_array))
		for (size_t i = 0; i < json_object_array_length(ips) && i < 64; i++) {
			const char *a =
			    json_get_string(json_object_array_get_idx(ips, i), "address");
			if (a && strlen(a) < 64 && strchr(a, '/'))
				strv_push(&ret->ips, xstrdup(a));
		}
	json_object_object_get_ex(root, "dns", &dns);
	if (dns && json_object_is_type(dns, json_type_object)) {
		ret->nameservers = string_array(dns, "nameservers", 8);
		ret->search = string_array(dns, "search", 8);
		ret->options = string_array(dns, "options", 16);
	}
	json_object_put(root);
	return 0;
}

char *cni_parse_error(const char *json, size_t len)
{
	json_object *root, *code;
	const char *msg, *details;
	char *out = NULL;

	if (json_parse(json, len, 8, true, &root, NULL) < 0)
		return NULL;
	msg = json_get_string(root, "msg");
	details = json_get_string(root, "details");
	if (msg && json_object_object_get_ex(root, "code", &code))
		out = xasprintf("%.512s%s%.512s (code %d)", msg, details && *details ? ": " : "",
		                details ? details : "", json_object_get_int(code));
	json_object_put(root);
	return out;
}

void cni_result_done(struct cni_result *r)
{
	strv_free(r->ips);
	strv_free(r->nameservers);
	strv_free(r->search);
	strv_free(r->options);
	memset(r, 0, sizeof(*r));
}

static void append_line(char **text, const char *key, char *const *v, const char *sep)
{
	char *n;
	if (!v || !*v)
		return;
	n = xasprintf("%s%s", *text, key);
	free(*text);
	*text = n;
	for (; *v; v++) {
		n = xasprintf("%s%s%s", *text, sep, *v);
		free(*text);
		*text = n;
	}
	n = xasprintf("%s\n", *text);
	free(*text);
	*text = n;
}

char *cni_resolv_conf(const struct cni_result *r)
{
	char *text = xstrdup("");
	if (!r->nameservers || !r->nameservers[0]) {
		free(text);
		return NULL;
	}
	for (char **ns = r->nameservers; *ns; ns++) {
		char *n = xasprintf("%snameserver %s\n", text, *ns);
		free(text);
		text = n;
	}
	append_line(&text, "search", r->search, " ");
	append_line(&text, "options", r->options, " ");
	return text;
}

/* ---- configuration ---- */

static int read_conf(const char *path, json_object **ret, struct hull_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *text = xmalloc(CNI_MAX_CONF + 1);
	ssize_t n;

	if (fd < 0)
		return hull_error_set_errno(err, -errno, "open '%s'", path);
	n = read_all(fd, text, CNI_MAX_CONF + 1);
	if (n < 0)
		return hull_error_set_errno(err, (int)n, "read '%s'", path);
	if ((size_t)n > CNI_MAX_CONF)
		return hull_error_set(err, -EFBIG, "'%s': over 1 MiB", path);
	if (json_parse(text, (size_t)n, 64, true, ret, err) < 0)
		return hull_error_prefix(err, "'%s'", path);
	return 0;
}

/* A single plugin's .conf made a list of one, as libcni does. */
static json_object *as_list(json_object *conf)
{
	json_object *list, *plugins, *v;
	if (json_object_object_get_ex(conf, "plugins", NULL))
		return json_object_get(conf);
	list = json_object_new_object();
	if (json_object_object_get_ex(conf, "cniVersion", &v))
		json_object_object_add(list, "cniVersion", json_object_get(v));
	if (json_object_object_get_ex(conf, "name", &v))
		json_object_object_add(list, "name", json_object_get(v));
	plugins = json_object_new_array();
	json_object_array_add(plugins, json_object_get(conf));
	json_object_object_add(list, "plugins", plugins);
	return list;
}

int cni_conf_list(json_object *conf, const char *file, json_object **ret, struct hull_error **err)
{
	json_object *list = as_list(conf), *plugins;
	int r = 0;

	if (!json_object_object_get_ex(list, "plugins", &plugins) ||
	    !json_object_is_type(plugins, json_type_array) ||
	    json_object_array_length(plugins) == 0) {
		r = hull_error_set(err, -EINVAL, "'%s': no plugins", file);
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(plugins) && r == 0; i++) {
		json_object *p = json_object_array_get_idx(plugins, i);
		const char *type = json_get_string(p, "type");
		if (!json_object_is_type(p, json_type_object) || !type || !id_is_valid(type))
			r = hull_error_set(err, -EINVAL, "'%s': plugins[%zu].type: want a name",
			                   file, i);
	}
	if (r == 0 && !json_get_string(list, "cniVersion"))
		r = hull_error_set(err, -EINVAL, "'%s': no cniVersion", file);
out:
	if (r < 0) {
		json_object_put(list);
		return r;
	}
	*ret = list;
	return 0;
}

static bool conf_name(const char *f)
{
	const char *dot = strrchr(f, '.');
	return f[0] != '.' && dot &&
	       (!strcmp(dot, ".conflist") || !strcmp(dot, ".conf") || !strcmp(dot, ".json"));
}

static int find_network(struct cni *c, const char *dir, struct hull_error **err)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, alphasort), r = 0;

	if (n < 0)
		return hull_error_set_errno(err, -errno, "CNI config dir '%s'", dir);
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *path = NULL;
		json_object *conf = NULL;
		const char *name;
		if (c->file || !conf_name(ents[i]->d_name))
			goto next;
		path = xasprintf("%s/%s", dir, ents[i]->d_name);
		/* One broken file does not hide the others (libcni skips them too). */
		if (read_conf(path, &conf, NULL) < 0)
			goto next;
		name = json_get_string(conf, "name");
		/* No name asked for: the first network, as kubelet's runtimes take it. */
		if (name && (!c->name || strcmp(name, c->name) == 0)) {
			if (!c->name)
				c->name = xstrdup(name);
			r = cni_conf_list(conf, path, &c->list, err);
			c->file = TAKE_PTR(path);
		}
		json_object_put(conf);
next:
		free(ents[i]);
	}
	free(ents);
	if (r < 0)
		return r;
	if (!c->list && !c->name)
		return hull_error_set(err, -ENOENT, "no CNI network in '%s'", dir);
	if (!c->list)
		return hull_error_set(err, -ENOENT, "no CNI network named '%s' in '%s'", c->name,
		                      dir);
	return 0;
}

/* ---- the namespace ---- */

static int netns_create(const char *path, struct hull_error **err)
{
	_cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	int fd, r = 0;

	if (self < 0)
		return hull_error_set_errno(err, -errno, "open our network namespace");
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return hull_error_set_errno(err, -errno, "create '%s'", path);
	close(fd);
	/* As `ip netns add`: a new namespace for this thread, pinned by a bind mount. */
	if (unshare(CLONE_NEWNET) < 0)
		r = hull_error_set_errno(err, -errno, "new network namespace");
	else if (mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL) < 0)
		r = hull_error_set_errno(err, -errno, "pin network namespace at '%s'", path);
	if (setns(self, CLONE_NEWNET) < 0)
		abort();
	if (r < 0)
		(void)unlink(path);
	return r;
}

static void netns_remove(const char *path)
{
	(void)umount2(path, MNT_DETACH);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("remove '%s': %s", path, strerror(errno));
}

/* ---- plugins ---- */

static char *find_plugin(const char *type, const char *paths)
{
	_cleanup_free_ char *copy = xstrdup(paths);
	char *save = NULL;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", d, type);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

static const char *bin_path(void)
{
	const char *p = getenv("CNI_PATH");
	return p && *p ? p : CNI_BIN_PATH;
}

/* Run one plugin: stdin conf, stdout into out, stderr into errout. Returns the exit
 * status (>= 0) or -errno with *err set. */
static int exec_plugin(const struct cni *c, const char *type, const char *cmd, const char *conf,
                       struct buf *out, struct buf *errout, struct hull_error **err)
{
	_cleanup_free_ char *bin = find_plugin(type, bin_path());
	int in[2], o[2], e[2], status = 0;
	size_t written = 0, conf_len = strlen(conf);
	uint64_t deadline;
	struct timespec ts;
	pid_t pid;

	if (!bin)
		return hull_error_set(err, -ENOENT, "CNI plugin '%s' not found in %s", type,
		                      bin_path());
	if (pipe2(in, O_CLOEXEC) < 0)
		return hull_error_set_errno(err, -errno, "pipe");
	if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0)
		abort();
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		char *env[] = {xasprintf("CNI_COMMAND=%s", cmd),
		               xasprintf("CNI_CONTAINERID=%s", c->container_id),
		               xasprintf("CNI_NETNS=%s", c->netns),
		               xasprintf("CNI_IFNAME=%s", c->ifname),
		               xasprintf("CNI_PATH=%s", bin_path()),
		               (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		               NULL};
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(in[0], 0);
		dup2(o[1], 1);
		dup2(e[1], 2);
		execve(bin, (char *[]){bin, NULL}, env);
		dprintf(2, "exec '%s': %s\n", bin, strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(o[1]);
	close(e[1]);
	fd_set_nonblock(in[1], 1);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + CNI_TIMEOUT_MS;
	for (int open_fds = 2; open_fds > 0;) {
		struct pollfd p[3] = {{.fd = o[0], .events = POLLIN},
		                      {.fd = e[0], .events = POLLIN},
		                      {.fd = in[1], .events = POLLOUT}};
		uint64_t now;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
		if (now >= deadline || poll(p, in[1] >= 0 ? 3 : 2, (int)(deadline - now)) == 0) {
			kill(pid, SIGKILL);
			status = -ETIMEDOUT;
			break;
		}
		if (in[1] >= 0 && p[2].revents) {
			ssize_t n = write(in[1], conf + written, conf_len - written);
			if (n > 0)
				written += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == conf_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		for (int i = 0; i < 2; i++) {
			struct buf *b = i == 0 ? out : errout;
			int *fd = i == 0 ? &o[0] : &e[0];
			if (*fd < 0 || !p[i].revents)
				continue;
			ssize_t n = read(*fd, buf_reserve(b, 65536), 65536);
			if (n > 0 && b->len + (size_t)n <= CNI_MAX_OUTPUT) {
				buf_commit(b, (size_t)n);
			} else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) ||
			           n > 0) {
				close(*fd);
				*fd = -1;
				open_fds--;
			}
		}
	}
	if (o[0] >= 0)
		close(o[0]);
	if (e[0] >= 0)
		close(e[0]);
	if (in[1] >= 0)
		close(in[1]);
	if (status == -ETIMEDOUT) {
		(void)waitpid(pid, NULL, 0);
		return hull_error_set(err, -ETIMEDOUT,
		                      "CNI plugin '%s' (%s) did not finish in %d s", type, cmd,
		                      CNI_TIMEOUT_MS / 1000);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* plugin.capabilities[cap] is true. */
static bool has_capability(json_object *plugin, const char *cap)
{
	json_object *caps, *v;
	return json_object_object_get_ex(plugin, "capabilities", &caps) &&
	       json_object_object_get_ex(caps, cap, &v) && json_object_get_boolean(v);
}

/* The config a plugin gets: its own object plus the list's name and cniVersion, and
 * the previous plugin's result. */
static char *plugin_conf(const struct cni *c, size_t i)
{
	json_object *plugins, *conf = NULL, *v;
	char *text;

	json_object_object_get_ex(c->list, "plugins", &plugins);
	json_object_deep_copy(json_object_array_get_idx(plugins, i), &conf, NULL);
	json_object_object_get_ex(c->list, "name", &v);
	json_object_object_add(conf, "name", json_object_get(v));
	json_object_object_get_ex(c->list, "cniVersion", &v);
	json_object_object_add(conf, "cniVersion", json_object_get(v));
	if (c->result)
		json_object_object_add(conf, "prevResult", json_object_get(c->result));
	if (c->port_mappings &&
	    has_capability(json_object_array_get_idx(plugins, i), "portMappings")) {
		json_object *rc = json_object_new_object();
		json_object_object_add(rc, "portMappings", json_object_get(c->port_mappings));
		json_object_object_add(conf, "runtimeConfig", rc);
	}
	text = xstrdup(json_object_to_json_string_ext(conf, JSON_C_TO_STRING_PLAIN));
	json_object_put(conf);
	return text;
}

static const char *plugin_type(const struct cni *c, size_t i)
{
	json_object *plugins;
	json_object_object_get_ex(c->list, "plugins", &plugins);
	return json_get_string(json_object_array_get_idx(plugins, i), "type");
}

/* Run plugin i; on success its result (ADD) replaces c->result. */
static int run_plugin(struct cni *c, size_t i, const char *cmd, struct hull_error **err)
{
	_cleanup_free_ char *conf = plugin_conf(c, i);
	const char *type = plugin_type(c, i);
	struct buf out = {0}, errout = {0};
	int status;

	status = exec_plugin(c, type, cmd, conf, &out, &errout, err);
	if (status > 0) {
		_cleanup_free_ char *why = cni_parse_error((const char *)buf_head(&out), out.len);
		if (!why && errout.len)
			why = xstrndup((const char *)buf_head(&errout),
			               errout.len > 512 ? 512 : errout.len);
		status = hull_error_set(err, -EIO, "CNI plugin '%s' (%s) failed: %s", type, cmd,
		                        why ? why : "no message");
	} else if (status == 0 && strcmp(cmd, "ADD") == 0) {
		json_object *res;
		if (json_parse((const char *)buf_head(&out), out.len, 32, true, &res, err) < 0) {
			status = hull_error_prefix(err, "CNI plugin '%s' (ADD) result", type);
		} else {
			json_object_put(c->result);
			c->result = res;
		}
	}
	buf_release(&out);
	buf_release(&errout);
	return status;
}

/* Where a run's namespace and record live: a dot directory, which the sandbox sweep
 * leaves alone (cni_sweep has its own rules). */
static char *netns_dir(const char *state_root)
{
	return xasprintf("%s/.netns", state_root);
}

/* Write c's record (network, config dir, plugins tried, last result), atomically:
 * before each plugin runs, so a crash at any point leaves enough to DEL. */
static void write_record(const struct cni *c)
{
	json_object *o = json_object_new_object();
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", c->record);
	const char *text;
	int fd;

	json_object_object_add(o, "network", json_object_new_string(c->name));
	json_object_object_add(o, "conf_dir", json_object_new_string(c->conf_dir));
	json_object_object_add(o, "added", json_object_new_int((int)c->n_added));
	if (c->result)
		json_object_object_add(o, "result", json_object_get(c->result));
	if (c->port_mappings)
		json_object_object_add(o, "port_mappings", json_object_get(c->port_mappings));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || rename(tmp, c->record) < 0)
		log_warn("CNI record '%s': %s", c->record, strerror(errno));
	if (fd >= 0)
		close(fd);
	json_object_put(o);
}

int cni_setup(const char *name, const char *id, const char *state_root, json_object *port_mappings,
              struct cni **ret, struct hull_error **err)
{
	struct cni *c = xcalloc(1, sizeof(*c));
	const char *dir = getenv("HULL_CNI_CONF_DIR");
	_cleanup_free_ char *nsdir = netns_dir(state_root);
	json_object *plugins;
	int r;

	c->name = name ? xstrdup(name) : NULL;
	c->container_id = xstrdup(id);
	c->ifname = xstrdup("eth0");
	c->conf_dir = xstrdup(dir && *dir ? dir : CNI_CONF_DIR);
	r = find_network(c, c->conf_dir, err);
	if (r < 0)
		goto fail;
	if (port_mappings && json_object_array_length(port_mappings) > 0) {
		bool any = false;
		json_object_object_get_ex(c->list, "plugins", &plugins);
		for (size_t i = 0; i < json_object_array_length(plugins); i++)
			any |=
			    has_capability(json_object_array_get_idx(plugins, i), "portMappings");
		if (!any) {
			r = hull_error_set(err, -EINVAL,
			                   "-p: no plugin of '%s' takes port mappings (add portmap "
			                   "with \"capabilities\": {\"portMappings\": true})",
			                   c->file);
			goto fail;
		}
		c->port_mappings = json_object_get(port_mappings);
	}
	if (mkdir_p(nsdir, 0700) < 0) {
		r = hull_error_set_errno(err, -errno, "mkdir '%s'", nsdir);
		goto fail;
	}
	c->netns = xasprintf("%s/%s", nsdir, id);
	r = netns_create(c->netns, err);
	if (r < 0) {
		free(c->netns);
		c->netns = NULL;
		goto fail;
	}
	c->record = xasprintf("%s.cni", c->netns);
	json_object_object_get_ex(c->list, "plugins", &plugins);
	for (size_t i = 0; i < json_object_array_length(plugins); i++) {
		/* A failed ADD is DELeted too: it may have done half its work. */
		c->n_added = i + 1;
		write_record(c);
		r = run_plugin(c, i, "ADD", err);
		if (r < 0)
			goto fail;
	}
	write_record(c);
	if (c->result) {
		const char *text =
		    json_object_to_json_string_ext(c->result, JSON_C_TO_STRING_PLAIN);
		r = cni_parse_result(text, strlen(text), &c->res, err);
		if (r < 0)
			goto fail;
	}
	log_debug("CNI network '%s' (%s): %zu addresses", c->name, c->file,
	          strv_length(c->res.ips));
	*ret = c;
	return 0;
fail:
	hull_error_prefix(err, "--net=cni:%s", name);
	cni_teardown(c);
	return r;
}

struct cni *cni_teardown(struct cni *c)
{
	if (!c)
		return NULL;
	for (size_t i = c->n_added; i-- > 0;) {
		struct hull_error *e = NULL;
		if (run_plugin(c, i, "DEL", &e) < 0)
			log_warn("%s", e->msg);
		hull_error_free(e);
	}
	if (c->record)
		(void)unlink(c->record);
	if (c->netns) {
		netns_remove(c->netns);
		/* The last sandbox out takes the directory (another may be making one). */
		char *slash = strrchr(c->netns, '/');
		*slash = '\0';
		(void)rmdir(c->netns);
	}
	return cni_forget(c);
}

struct cni *cni_forget(struct cni *c)
{
	if (!c)
		return NULL;
	cni_result_done(&c->res);
	json_object_put(c->result);
	json_object_put(c->port_mappings);
	json_object_put(c->list);
	free(c->name);
	free(c->file);
	free(c->netns);
	free(c->record);
	free(c->conf_dir);
	free(c->container_id);
	free(c->ifname);
	free(c);
	return NULL;
}

struct cni *cni_restore(const char *state_root, const char *id)
{
	_cleanup_free_ char *nsdir = netns_dir(state_root);
	struct cni *c;
	json_object *rec = NULL, *v;
	const char *network, *conf_dir;

	if (!id_is_valid(id))
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->netns = xasprintf("%s/%s", nsdir, id);
	c->record = xasprintf("%s.cni", c->netns);
	if (access(c->record, F_OK) < 0 && access(c->netns, F_OK) < 0) {
		free(c->netns);
		free(c->record);
		free(c);
		return NULL;
	}
	c->container_id = xstrdup(id);
	c->ifname = xstrdup("eth0");
	if (read_conf(c->record, &rec, NULL) == 0 && (network = json_get_string(rec, "network")) &&
	    (conf_dir = json_get_string(rec, "conf_dir"))) {
		c->name = xstrdup(network);
		c->conf_dir = xstrdup(conf_dir);
		if (find_network(c, conf_dir, NULL) == 0 &&
		    json_object_object_get_ex(rec, "added", &v)) {
			json_object *plugins;
			json_object_object_get_ex(c->list, "plugins", &plugins);
			c->n_added = (size_t)MIN((int64_t)json_object_array_length(plugins),
			                         MAX(json_object_get_int64(v), 0));
			if (json_object_object_get_ex(rec, "result", &v)) {
				const char *text =
				    json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
				c->result = json_object_get(v);
				(void)cni_parse_result(text, strlen(text), &c->res, NULL);
			}
			if (json_object_object_get_ex(rec, "port_mappings", &v) &&
			    json_object_is_type(v, json_type_array))
				c->port_mappings = json_object_get(v);
		}
	}
	json_object_put(rec);
	return c;
}

/* Rebuild a run's struct cni from its record and tear it down. */
static void sweep_one(const char *state_root, const char *id)
{
	struct cni *c = cni_restore(state_root, id);
	/* Without its config the plugins cannot be asked; the namespace still goes. */
	if (c)
		log_info("CNI: tearing down what sandbox '%s' left (%zu plugins)", id, c->n_added);
	cni_teardown(c);
}

void cni_sweep(const char *state_root, int (*owner)(const char *state_dir))
{
	_cleanup_free_ char *nsdir = netns_dir(state_root);
	_cleanup_(closedirp) DIR *d = opendir(nsdir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *id = NULL, *owner_dir = NULL, *path = NULL;
		size_t n = strlen(de->d_name);
		struct stat st;

		if (n < 5 || strcmp(de->d_name + n - 4, ".cni") != 0)
			continue;
		id = xstrndup(de->d_name, n - 4);
		owner_dir = xasprintf("%s/%s", state_root, id);
		path = xasprintf("%s/%s", nsdir, de->d_name);
		if (!id_is_valid(id) || owner(owner_dir) != 0 || stat(path, &st) < 0 ||
		    st.st_mtime + 120 > time(NULL))
			continue;
		sweep_one(state_root, id);
	}
}
