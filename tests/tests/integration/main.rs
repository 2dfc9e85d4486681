mod cache_aside;
mod comments_api;
mod events_files;
mod posts_api;
mod smoke;
mod template;
mod tokens;
mod users_api;
