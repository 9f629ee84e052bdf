//! Turns a parsed function and its arguments into the monitored function. The signature is
//! re-emitted exactly as written; only the body changes: a `static JobSite` describing the
//! monitor, a run started at entry and finished with the body's outcome. On any error the
//! original function is emitted next to the error, so the rest of the crate (and the IDE)
//! still sees it.

use std::time::Duration;

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, quote};
use syn::visit_mut::VisitMut;
use syn::{Path, ReturnType, Type, parse_quote};

use crate::args::{JobArgs, Schedule};
use crate::item::JobFn;
use crate::values;

/// The whole macro on `proc_macro2` tokens, so it can be unit-tested.
pub(crate) fn monitored_job(args: TokenStream, item: TokenStream) -> TokenStream {
    let Ok(job_fn) = syn::parse2::<JobFn>(item.clone()) else {
        let error = syn::Error::new(
            Span::call_site(),
            "`#[monitored_job]` can only be used on a function with a body, such as \
             `fn nightly_backup() { ... }`",
        );
        return with_error(item, error);
    };
    match validate(&job_fn, args) {
        Ok((args, slug)) => expand(&job_fn, &slug, &args),
        Err(error) => with_error(item, error),
    }
}

/// The arguments and the slug, or every error in the arguments and the function together.
fn validate(job_fn: &JobFn, args: TokenStream) -> syn::Result<(JobArgs, String)> {
    match (syn::parse2::<JobArgs>(args), job_fn.check()) {
        (Ok(args), Ok(())) => {
            let slug = slug(job_fn, &args)?;
            Ok((args, slug))
        }
        (Err(mut error), Err(more)) => {
            error.combine(more);
            Err(error)
        }
        (Err(error), Ok(())) | (Ok(_), Err(error)) => Err(error),
    }
}

/// The item as the user wrote it, plus the error (tokio-macros' `token_stream_with_error`).
fn with_error(mut item: TokenStream, error: syn::Error) -> TokenStream {
    item.extend(error.into_compile_error());
    item
}

fn slug(job_fn: &JobFn, args: &JobArgs) -> syn::Result<String> {
    if let Some(slug) = &args.slug {
        return Ok(slug.clone());
    }
    let ident = &job_fn.sig.ident;
    let name = syn::ext::IdentExt::unraw(ident).to_string();
    values::default_slug(&name).map_err(|message| syn::Error::new(ident.span(), message))
}

fn expand(job_fn: &JobFn, slug: &str, args: &JobArgs) -> TokenStream {
    let krate = args
        .krate
        .clone()
        .unwrap_or_else(|| parse_quote!(::watchpost));
    let site = job_site(&krate, slug, args);
    let run = if job_fn.is_async() {
        async_run(job_fn)
    } else {
        sync_run(job_fn)
    };
    let finish = finish(&krate);

    let JobFn {
        attrs,
        vis,
        sig,
        brace,
        inner_attrs,
        ..
    } = job_fn;
    let mut tokens = quote!(#(#attrs)* #vis #sig);
    brace.surround(&mut tokens, |body| {
        body.extend(quote! {
            #(#inner_attrs)*
            #site
            let __watchpost_run = __WATCHPOST_JOB.start();
            #run
            #finish
            __watchpost_ret
        });
    });
    // `job!` names `::watchpost`; behind a renamed crate (`crate = ...`) there is none.
    if args.krate.is_none() {
        tokens.extend(schedulable(job_fn, slug, args, &krate));
    }
    tokens
}

/// The name of the hidden constant that lets `watchpost::job!(name)` hand a job to the SDK's
/// scheduler: `__watchpost_job_` and the function's name.
pub(crate) fn spec_name(ident: &syn::Ident) -> syn::Ident {
    let name = syn::ext::IdentExt::unraw(ident);
    syn::Ident::new(&format!("__watchpost_job_{name}"), ident.span())
}

/// For a function the SDK can run on its schedule (it has a schedule, takes no arguments and
/// is not generic), a hidden constant beside it describing the job: the same site, and
/// whether it is `async`. It is a `const` so that it is also valid next to an associated
/// function in an inherent impl. Nothing for other functions, nor with `crate = ...` (the
/// scheduler's `job!` names `::watchpost`).
fn schedulable(job_fn: &JobFn, slug: &str, args: &JobArgs, krate: &Path) -> TokenStream {
    let sig = &job_fn.sig;
    if args.schedule.is_none() || !sig.inputs.is_empty() || !sig.generics.params.is_empty() {
        return TokenStream::new();
    }
    let vis = &job_fn.vis;
    let name = spec_name(&sig.ident);
    let site = site_value(krate, slug, args);
    let kind = if job_fn.is_async() {
        quote!(#krate::__private::AsyncJob)
    } else {
        quote!(#krate::__private::BlockingJob)
    };
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code)]
        #vis const #name: #krate::__private::JobSpec<#kind> = #krate::__private::JobSpec::new(&#site);
    }
}

/// `watchpost::job!(path::to::job)`: `JobSpec::with(path::to::__watchpost_job_job, path::to::job)`.
pub(crate) fn job(input: TokenStream) -> TokenStream {
    let path: Path = match syn::parse2(input) {
        Ok(path) => path,
        Err(_) => {
            return syn::Error::new(
                Span::call_site(),
                "`job!` takes the path of a `#[monitored_job]` function, such as \
                 `job!(nightly_backup)`",
            )
            .into_compile_error();
        }
    };
    let mut spec = path.clone();
    let Some(last) = spec.segments.last_mut() else {
        return syn::Error::new(Span::call_site(), "`job!` needs a function's path")
            .into_compile_error();
    };
    last.ident = spec_name(&last.ident);
    quote!(::watchpost::__private::JobSpec::with(#spec, #path))
}

/// `let __watchpost_ret = <the original body, run once>;` for a sync function. The body runs
/// in a closure so that `return` and `?` end the closure, not the function, and the outcome is
/// still observed. The closure is passed as `FnOnce` so it may hand out borrows of what it
/// captured (`&mut self` returning `&mut self.field`), which an `FnMut` closure may not.
fn sync_run(job_fn: &JobFn) -> TokenStream {
    let block = job_fn.block();
    let annotation = return_annotation(&job_fn.sig.output);
    quote! {
        fn __watchpost_call_once<R>(body: impl ::core::ops::FnOnce() -> R) -> R {
            body()
        }
        let __watchpost_ret #annotation = __watchpost_call_once(move || #block);
    }
}

/// `let __watchpost_ret = <the original body, awaited>;` for an `async fn`; the SDK's
/// `instrument` sees every poll, so a panic inside marks the run as failed.
fn async_run(job_fn: &JobFn) -> TokenStream {
    let block = job_fn.block();
    let annotation = return_annotation(&job_fn.sig.output);
    quote! {
        let __watchpost_ret #annotation = __watchpost_run.instrument(async move #block).await;
    }
}

/// `: T` for `-> T` (`: ()` without one), with every `impl Trait` in it replaced by `_`.
///
/// The body's type must be known before the probe's method call is resolved, and the closure
/// alone does not always fix it: with `-> Result<(), String>` and `?` in the body the error
/// type stays open, and a body that only panics would fall back to `!`. The probe would then
/// pick its `Result`-with-`Error` impl and fail to compile. A bare `impl Trait` return gets no
/// annotation; its type comes from the body alone.
fn return_annotation(output: &ReturnType) -> Option<TokenStream> {
    let ReturnType::Type(_, ty) = output else {
        return Some(quote!(: ()));
    };
    let mut ty = (**ty).clone();
    ImplTraitToInfer.visit_type_mut(&mut ty);
    (!matches!(ty, Type::Infer(_))).then(|| quote!(: #ty))
}

/// `impl Trait` is not allowed in a `let` type; `_` stands for the same concrete type.
struct ImplTraitToInfer;

impl VisitMut for ImplTraitToInfer {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if matches!(ty, Type::ImplTrait(_)) {
            *ty = parse_quote!(_);
        } else {
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
}

/// `__watchpost_run.finish(outcome)`, the outcome chosen by autoref specialization in the SDK:
/// an `Err` with an error, an `Err` with a `Debug` value, or success for anything else.
///
/// The call is a statement of its own so the probe's temporaries live until `finish` returns;
/// as the tail of a block (edition 2024) they would be dropped before the outcome is used. The
/// block keeps the trait imports out of the user's scope.
fn finish(krate: &Path) -> TokenStream {
    quote! {{
        #[allow(unused_imports)]
        use #krate::__private::{ViaError as _, ViaAsRefError as _, ViaDebug as _, ViaAny as _};
        __watchpost_run.finish((&&&&#krate::__private::Probe(&__watchpost_ret)).__watchpost_outcome());
    }}
}

/// `static __WATCHPOST_JOB: JobSite = ...;`: everything known at compile time, so a call costs
/// a pointer, not a struct build.
fn job_site(krate: &Path, slug: &str, args: &JobArgs) -> TokenStream {
    let site = site_value(krate, slug, args);
    quote! {
        static __WATCHPOST_JOB: #krate::__private::JobSite = #site;
    }
}

/// The `JobSite { .. }` expression.
fn site_value(krate: &Path, slug: &str, args: &JobArgs) -> TokenStream {
    let environment = option(args.environment.as_deref());
    let config = option(
        args.schedule
            .as_ref()
            .map(|schedule| job_config(krate, schedule, args)),
    );
    quote! {
        #krate::__private::JobSite {
            slug: #slug,
            environment: #environment,
            config: #config,
        }
    }
}

fn job_config(krate: &Path, schedule: &Schedule, args: &JobArgs) -> TokenStream {
    let schedule = job_schedule(krate, schedule);
    let timezone = option(args.timezone.as_deref());
    let checkin_margin = option(args.checkin_margin.map(duration));
    let max_runtime = option(args.max_runtime.map(duration));
    let failure_issue_threshold = option(args.failure_issue_threshold.map(Literal::u64_unsuffixed));
    let recovery_threshold = option(args.recovery_threshold.map(Literal::u64_unsuffixed));
    quote! {
        #krate::__private::JobConfig {
            schedule: #schedule,
            timezone: #timezone,
            checkin_margin: #checkin_margin,
            max_runtime: #max_runtime,
            failure_issue_threshold: #failure_issue_threshold,
            recovery_threshold: #recovery_threshold,
        }
    }
}

fn job_schedule(krate: &Path, schedule: &Schedule) -> TokenStream {
    match schedule {
        Schedule::Crontab(crontab) => quote!(#krate::__private::JobSchedule::Crontab(#crontab)),
        Schedule::Interval(n, unit) => {
            let n = Literal::u64_unsuffixed(*n);
            let unit = syn::Ident::new(unit.variant(), Span::call_site());
            quote!(#krate::__private::JobSchedule::Interval(#n, #krate::__private::IntervalUnit::#unit))
        }
    }
}

fn duration(duration: Duration) -> TokenStream {
    let secs = Literal::u64_unsuffixed(duration.as_secs());
    match duration.subsec_nanos() {
        0 => quote!(::core::time::Duration::from_secs(#secs)),
        nanos => quote!(::core::time::Duration::new(#secs, #nanos)),
    }
}

fn option<T: ToTokens>(value: Option<T>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expands `#[monitored_job(#args)] #item` and compares it with `expected`, token for token.
    fn check(args: TokenStream, item: TokenStream, expected: &TokenStream) {
        let actual = monitored_job(args, item);
        assert_eq!(actual.to_string(), expected.to_string());
    }

    /// Expands and returns the compile errors' messages.
    fn errors(args: TokenStream, item: TokenStream) -> String {
        monitored_job(args, item).to_string()
    }

    #[test]
    fn sync_fn_with_every_argument() {
        check(
            quote!(
                slug = "nightly-backup",
                schedule = "0 3 * * *",
                timezone = "Europe/Berlin",
                checkin_margin = "5m",
                max_runtime = "1500ms",
                failure_issue_threshold = 2,
                recovery_threshold = 3,
                environment = "staging",
            ),
            quote! {
                /// Docs survive.
                pub(crate) fn backup<'a, T: Clone>(path: &'a T) -> Result<&'a T, std::io::Error>
                where
                    T: Send,
                {
                    #![allow(unused)]
                    Ok(path)
                }
            },
            &quote! {
                /// Docs survive.
                pub(crate) fn backup<'a, T: Clone>(path: &'a T) -> Result<&'a T, std::io::Error>
                where
                    T: Send,
                {
                    #![allow(unused)]
                    static __WATCHPOST_JOB: ::watchpost::__private::JobSite = ::watchpost::__private::JobSite {
                        slug: "nightly-backup",
                        environment: ::core::option::Option::Some("staging"),
                        config: ::core::option::Option::Some(::watchpost::__private::JobConfig {
                            schedule: ::watchpost::__private::JobSchedule::Crontab("0 3 * * *"),
                            timezone: ::core::option::Option::Some("Europe/Berlin"),
                            checkin_margin: ::core::option::Option::Some(::core::time::Duration::from_secs(300)),
                            max_runtime: ::core::option::Option::Some(::core::time::Duration::new(1, 500000000u32)),
                            failure_issue_threshold: ::core::option::Option::Some(2),
                            recovery_threshold: ::core::option::Option::Some(3),
                        }),
                    };
                    let __watchpost_run = __WATCHPOST_JOB.start();
                    fn __watchpost_call_once<R>(body: impl ::core::ops::FnOnce() -> R) -> R {
                        body()
                    }
                    let __watchpost_ret: Result<&'a T, std::io::Error> =
                        __watchpost_call_once(move || { Ok(path) });
                    {
                        #[allow(unused_imports)]
                        use ::watchpost::__private::{ViaError as _, ViaAsRefError as _, ViaDebug as _, ViaAny as _};
                        __watchpost_run.finish((&&&&::watchpost::__private::Probe(&__watchpost_ret)).__watchpost_outcome());
                    }
                    __watchpost_ret
                }
            },
        );
    }

    #[test]
    fn async_method_with_interval_and_renamed_crate() {
        check(
            quote!(interval = "2h", crate = "my_sdk::watchpost"),
            quote! {
                async fn sync_all(&mut self) -> impl Sized { 1 }
            },
            &quote! {
                async fn sync_all(&mut self) -> impl Sized {
                    static __WATCHPOST_JOB: my_sdk::watchpost::__private::JobSite = my_sdk::watchpost::__private::JobSite {
                        slug: "sync_all",
                        environment: ::core::option::Option::None,
                        config: ::core::option::Option::Some(my_sdk::watchpost::__private::JobConfig {
                            schedule: my_sdk::watchpost::__private::JobSchedule::Interval(2, my_sdk::watchpost::__private::IntervalUnit::Hour),
                            timezone: ::core::option::Option::None,
                            checkin_margin: ::core::option::Option::None,
                            max_runtime: ::core::option::Option::None,
                            failure_issue_threshold: ::core::option::Option::None,
                            recovery_threshold: ::core::option::Option::None,
                        }),
                    };
                    let __watchpost_run = __WATCHPOST_JOB.start();
                    let __watchpost_ret = __watchpost_run.instrument(async move { 1 }).await;
                    {
                        #[allow(unused_imports)]
                        use my_sdk::watchpost::__private::{ViaError as _, ViaAsRefError as _, ViaDebug as _, ViaAny as _};
                        __watchpost_run.finish((&&&&my_sdk::watchpost::__private::Probe(&__watchpost_ret)).__watchpost_outcome());
                    }
                    __watchpost_ret
                }
            },
        );
    }

    #[test]
    fn a_scheduled_function_without_arguments_gets_a_spec_for_the_scheduler() {
        let expanded = monitored_job(
            quote!(schedule = "0 3 * * *"),
            quote!(
                pub async fn backup() {}
            ),
        )
        .to_string();
        assert!(
            expanded.contains("pub const __watchpost_job_backup : :: watchpost :: __private :: JobSpec < :: watchpost :: __private :: AsyncJob >"),
            "{expanded}"
        );
        for no_spec in [
            (
                quote!(),
                quote!(
                    fn backup() {}
                ),
            ),
            (
                quote!(schedule = "0 3 * * *"),
                quote!(
                    fn backup(path: &str) {}
                ),
            ),
            (
                quote!(schedule = "0 3 * * *"),
                quote!(
                    fn backup<T>() {}
                ),
            ),
        ] {
            let expanded = monitored_job(no_spec.0, no_spec.1).to_string();
            assert!(!expanded.contains("__watchpost_job_"), "{expanded}");
        }
        assert_eq!(
            job(quote!(jobs::backup)).to_string(),
            ":: watchpost :: __private :: JobSpec :: with (jobs :: __watchpost_job_backup , jobs :: backup)"
        );
        assert!(job(quote!(1 + 1)).to_string().contains("compile_error"));
    }

    #[test]
    fn without_a_schedule_no_config_is_sent() {
        let expanded = monitored_job(
            quote!(),
            quote!(
                fn r#loop() {}
            ),
        )
        .to_string();
        assert!(expanded.contains(r#"slug : "loop""#), "{expanded}");
        assert!(
            expanded.contains("config : :: core :: option :: Option :: None"),
            "{expanded}"
        );
        assert!(
            expanded.contains("let __watchpost_ret : () = __watchpost_call_once"),
            "{expanded}"
        );
    }

    #[test]
    fn impl_trait_inside_the_return_type_becomes_infer() {
        let annotation = return_annotation(&parse_quote!(-> Result<Box<impl Fn()>, String>));
        assert_eq!(
            annotation.unwrap().to_string(),
            ": Result < Box < _ > , String >"
        );
        assert!(return_annotation(&parse_quote!(-> impl Iterator<Item = u8>)).is_none());
        assert_eq!(
            return_annotation(&ReturnType::Default).unwrap().to_string(),
            ": ()"
        );
    }

    #[test]
    fn errors_keep_the_original_item() {
        let item = quote!(
            fn job() {}
        );
        let expanded = errors(quote!(schedule = "@reboot"), item.clone());
        assert!(expanded.starts_with(&item.to_string()), "{expanded}");
        assert!(expanded.contains("compile_error"), "{expanded}");
    }

    #[test]
    fn rejected_items() {
        let cases = [
            (
                quote! { const fn job() {} },
                "cannot be used on a `const fn`",
            ),
            (
                quote! { fn job() -> ! { loop {} } },
                "function returning `!`",
            ),
            (
                quote! { struct Job; },
                "can only be used on a function with a body",
            ),
            (
                quote! { fn job(); },
                "can only be used on a function with a body",
            ),
        ];
        for (item, message) in cases {
            let expanded = errors(quote!(), item.clone());
            assert!(expanded.contains(message), "{item}: {expanded}");
        }
    }

    #[test]
    fn argument_and_function_errors_are_reported_together() {
        let expanded = errors(quote!(schedule = "@reboot"), quote! { const fn job() {} });
        assert!(
            expanded.contains("`@reboot` is not a schedule"),
            "{expanded}"
        );
        assert!(
            expanded.contains("cannot be used on a `const fn`"),
            "{expanded}"
        );
    }
}
