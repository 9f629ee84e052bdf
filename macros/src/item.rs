//! The function under `#[monitored_job]`, parsed just enough to re-emit it: attributes,
//! visibility and signature as `syn` types, so generics, where-clauses, `impl Trait` and spans
//! survive untouched; the body as raw tokens, so a syntax error inside it is reported by rustc
//! on the user's code rather than by this macro (tracing-attributes does the same).

use proc_macro2::{Delimiter, Group, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, ReturnType, Signature, Type, Visibility, braced, token};

/// A function with a body: free function, method, or trait method with a default body.
pub(crate) struct JobFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) brace: token::Brace,
    /// `#![...]` at the top of the body; they stay at the top of the re-emitted body.
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) stmts: TokenStream,
}

impl Parse for JobFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let body;
        let brace = braced!(body in input);
        let inner_attrs = body.call(Attribute::parse_inner)?;
        let stmts = body.parse()?;
        Ok(JobFn {
            attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            stmts,
        })
    }
}

impl JobFn {
    /// Rejects the functions a check-in cannot wrap, pointing at the keyword or type that
    /// makes it so.
    pub(crate) fn check(&self) -> syn::Result<()> {
        if let Some(constness) = &self.sig.constness {
            return Err(syn::Error::new_spanned(
                constness,
                "`#[monitored_job]` cannot be used on a `const fn`: check-ins are sent at run \
                 time; remove `const`, or monitor a non-const function that calls this one",
            ));
        }
        if let ReturnType::Type(_, ty) = &self.sig.output
            && let Type::Never(never) = &**ty
        {
            return Err(syn::Error::new_spanned(
                never,
                "`#[monitored_job]` cannot be used on a function returning `!`: it never \
                 returns, so no `ok` or `error` check-in could be sent",
            ));
        }
        Ok(())
    }

    pub(crate) fn is_async(&self) -> bool {
        self.sig.asyncness.is_some()
    }

    /// The original body as one block, with the original brace span so that errors about the
    /// block as a whole (a wrong tail type) still point at the user's braces.
    pub(crate) fn block(&self) -> Group {
        let mut block = Group::new(Delimiter::Brace, self.stmts.clone());
        block.set_span(self.brace.span.join());
        block
    }
}
