//! Procedural macros of [`wasq-guest`](https://docs.rs/wasq-guest): `#[task]`, `tasks!` and
//! `main!`.
//!
//! Use them through the `wasq_guest` crate (`#[wasq_guest::task]`, `wasq_guest::main!`), which
//! re-exports them; the generated code refers to `::wasq_guest::__private`, so this crate is not
//! useful on its own.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser as _;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Error, FnArg, Ident, ItemFn, LitStr, Pat, Path, ReturnType, Token, Type};

/// Marks a function as a wasq task.
///
/// The function is kept as it is (it can still be called normally); next to it the attribute
/// generates a hidden descriptor that `wasq_guest::main!` and `wasq_guest::tasks!` refer to.
///
/// * Every parameter must be a plain identifier whose type implements
///   `serde::de::DeserializeOwned`. Parameter `i` takes `args[i]`, else `kwargs["<name>"]`, else
///   JSON `null` (so `Option<T>` parameters are optional).
/// * The return type must implement `serde::Serialize`, be `()`, be `!`, or be a `Result<T, E>`
///   (recognised by the last path segment `Result`) with `T: Serialize` and `E: Display`; an
///   `Err` fails the task with its message.
/// * `#[task(name = "other")]` registers the task under another name.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let item = TokenStream2::from(item);
    match expand_task(attr, item.clone()) {
        Ok(tokens) => tokens.into(),
        // Keep the function so that one mistake does not cascade into "cannot find" errors.
        Err(err) => {
            let err = err.to_compile_error();
            quote!(#item #err).into()
        }
    }
}

/// Builds the array of task descriptors for the listed `#[task]` functions:
/// `wasq_guest::tasks![hello, add]` is a `[wasq_guest::Task; 2]`. Useful with
/// `wasq_guest::dispatch` in tests.
#[proc_macro]
pub fn tasks(input: TokenStream) -> TokenStream {
    match expand_tasks(input.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// Registers the tasks of a module and generates its `fn main()`:
/// `wasq_guest::main!(hello, add, fib);`.
///
/// The generated `main` reads the task name from `argv[1]`, the arguments from stdin, runs the
/// task, writes its result to stdout and exits (see `wasq_guest::run`).
#[proc_macro]
pub fn main(input: TokenStream) -> TokenStream {
    match expand_tasks(input.into()) {
        Ok(array) => quote! {
            fn main() -> ::std::process::ExitCode {
                ::wasq_guest::run(&#array)
            }
        }
        .into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// The hidden descriptor generated next to task `fn_name`.
fn descriptor_ident(fn_name: &Ident) -> Ident {
    let bare = fn_name.to_string();
    let bare = bare.strip_prefix("r#").unwrap_or(&bare);
    format_ident!("__wasq_task_{}", bare, span = fn_name.span())
}

fn expand_tasks(input: TokenStream2) -> syn::Result<TokenStream2> {
    let paths = Punctuated::<Path, Token![,]>::parse_terminated.parse2(input)?;
    let mut descriptors = Vec::with_capacity(paths.len());
    for mut path in paths {
        let span = path.span();
        let Some(last) = path.segments.last_mut() else {
            return Err(Error::new(
                span,
                "expected the path of a #[wasq_guest::task] function",
            ));
        };
        if !last.arguments.is_none() {
            return Err(Error::new(
                last.arguments.span(),
                "tasks cannot be generic: list the function without generic arguments",
            ));
        }
        last.ident = descriptor_ident(&last.ident);
        descriptors.push(path);
    }
    Ok(quote! { [ #(#descriptors),* ] })
}

/// Options of `#[task(...)]`.
struct TaskOptions {
    name: Option<LitStr>,
}

fn parse_options(attr: TokenStream2) -> syn::Result<TaskOptions> {
    let mut options = TaskOptions { name: None };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let name: LitStr = meta.value()?.parse()?;
            if name.value().is_empty() {
                return Err(Error::new(name.span(), "a task name cannot be empty"));
            }
            options.name = Some(name);
            Ok(())
        } else {
            Err(meta.error("unknown option of #[task]; expected `name = \"...\"`"))
        }
    });
    parser.parse2(attr)?;
    Ok(options)
}

fn expand_task(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let options = parse_options(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;

    if let Some(asyncness) = &sig.asyncness {
        return Err(Error::new(asyncness.span(), "a task cannot be async"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new(
            sig.generics.span(),
            "a task cannot be generic: its parameter types must be concrete",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(Error::new(variadic.span(), "a task cannot be variadic"));
    }

    let fn_name = &sig.ident;
    let fn_bare = fn_name.to_string();
    let fn_bare = fn_bare.strip_prefix("r#").unwrap_or(&fn_bare).to_owned();
    let task_name = options.name.map_or(fn_bare, |name| name.value());

    let mut param_names = Vec::new();
    let mut bindings = Vec::new();
    let mut arg_exprs = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                return Err(Error::new(
                    receiver.span(),
                    "a task is a free function: it cannot take `self`",
                ));
            }
            FnArg::Typed(typed) => typed,
        };
        let Pat::Ident(pat) = &*typed.pat else {
            return Err(Error::new(
                typed.pat.span(),
                "task parameters must be plain identifiers (their names are the keyword argument names)",
            ));
        };
        if pat.by_ref.is_some() || pat.subpat.is_some() {
            return Err(Error::new(
                pat.span(),
                "task parameters must be plain identifiers",
            ));
        }
        check_param_type(&typed.ty)?;
        let name = pat.ident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name).to_owned();
        let ty = &typed.ty;
        let var = format_ident!("__wasq_arg{}", index);
        bindings.push(quote_spanned! {ty.span()=>
            let #var: #ty = __wasq_args.take(#index)?;
        });
        arg_exprs.push(var);
        param_names.push(name);
    }

    let call = quote! { #fn_name(#(#arg_exprs),*) };
    let body = match &sig.output {
        ReturnType::Default => quote! {
            #call;
            ::wasq_guest::__private::unit_output()
        },
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(tuple) if tuple.elems.is_empty() => quote! {
                #call;
                ::wasq_guest::__private::unit_output()
            },
            // `!` coerces to the wrapper's return type.
            Type::Never(_) => call,
            // Spanned so that a missing `Serialize`/`Display` impl is reported at the task, not the attribute.
            ty if is_result(ty) => quote_spanned! {ty.span()=>
                ::wasq_guest::__private::result_output(#fn_name(#(#arg_exprs),*))
            },
            ty => quote_spanned! {ty.span()=>
                ::wasq_guest::__private::value_output(&#fn_name(#(#arg_exprs),*))
            },
        },
    };

    let vis = &func.vis;
    let descriptor = descriptor_ident(fn_name);
    let param_count = param_names.len();
    let args_binding = if param_count == 0 {
        quote!(__wasq_args: ::wasq_guest::__private::Args)
    } else {
        quote!(mut __wasq_args: ::wasq_guest::__private::Args)
    };

    Ok(quote! {
        #func

        #[doc(hidden)]
        #[allow(non_upper_case_globals, reason = "named after the task function")]
        #vis const #descriptor: ::wasq_guest::Task = {
            fn __wasq_call(
                #args_binding,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::wasq_guest::Failure> {
                #(#bindings)*
                #body
            }
            ::wasq_guest::__private::new_task(#task_name, &[#(#param_names),*], __wasq_call)
        };
    })
}

/// Rejects parameter types that can never be deserialized from owned JSON.
fn check_param_type(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::Reference(reference) => Err(Error::new(
            reference.span(),
            "task parameters must be owned types (e.g. `String` instead of `&str`, `Vec<T>` instead of `&[T]`)",
        )),
        Type::ImplTrait(_) => Err(Error::new(
            ty.span(),
            "task parameters cannot be `impl Trait`: use a concrete type",
        )),
        _ => Ok(()),
    }
}

/// `Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`...: the last path segment is `Result`.
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        Type::Group(group) => is_result(&group.elem),
        Type::Paren(paren) => is_result(&paren.elem),
        _ => false,
    }
}
