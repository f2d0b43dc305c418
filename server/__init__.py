"""The aiohttp application: config, app factory, middleware, REST and websocket handlers."""
