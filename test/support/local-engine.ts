/** The machine's own Docker engine, where the runtime and agent suites run (the e2e suite uses the test bed's). */
export const DOCKER_SOCKET = process.env.PODIUM_TEST_DOCKER_SOCKET ?? '/var/run/docker.sock';
